// Only s3db.js's own command-line tool uses this package; the compat tests never run it.
export function createCLI() {
  throw new Error('cli-args-parser is stubbed for the s3db_nb compat tests');
}
