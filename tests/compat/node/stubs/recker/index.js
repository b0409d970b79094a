// recker@1.0.103 is not served by this registry; 1.0.56 has everything s3db.js uses on the
// S3/file paths. createRedDbClient only backs the reddb:// clients, which the tests never use.
export * from 'recker-upstream';

export function createRedDbClient() {
  throw new Error('createRedDbClient is not available: recker is stubbed to 1.0.56 for the s3db_nb compat tests');
}
