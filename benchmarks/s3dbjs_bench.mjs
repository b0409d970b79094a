// The s3db.js side of bench_bulk.py: times the real s3db.js insertMany and getAll of the same
// records on the same S3 endpoint, and prints one JSON line.
//
//   node s3dbjs_bench.mjs <s3db.js module URL> <connection string> <N> <parallelism>
//
// bench_bulk.py resolves the module URL inside tests/compat/node (where `make test` installs s3db.js).
const [entry, connectionString, nText, parallelismText] = process.argv.slice(2);
const { S3db } = await import(entry);
const n = Number(nText);
const parallelism = Number(parallelismText);

const db = new S3db({
  connectionString,
  logLevel: 'silent',
  parallelism,
  // recker 1.0.56 fails on HTTP 204 (see tests/compat/node/roundtrip.js): use the AWS SDK handler
  clientOptions: { httpClientOptions: { useReckerHandler: false } },
});
await db.connect();
const users = await db.createResource({
  name: 'users',
  attributes: {
    name: 'string', age: 'number|integer', country: 'string', score: 'number',
    active: 'boolean', created: 'datetime', tags: 'array|items:string',
  },
  partitions: {},
});
const countries = ['BR', 'PT', 'US', 'DE'];
const records = Array.from({ length: n }, (_, i) => ({
  id: `u${String(i).padStart(7, '0')}`,
  name: `name ${i}`,
  age: i % 90,
  country: countries[i % 4],
  score: (i % 1000) / 1000,
  active: i % 2 === 0,
  created: new Date(1704067200000 + i * 1000).toISOString(),
  tags: ['a', 'b'],
}));

let started = performance.now();
await users.insertMany(records);
const insertS = (performance.now() - started) / 1000;
started = performance.now();
const all = await users.getAll();
const readS = (performance.now() - started) / 1000;
console.log(JSON.stringify({ n, insert_s: insertS, read_s: readS, read_count: all.length }));
process.exit(0); // s3db.js keeps timers alive
