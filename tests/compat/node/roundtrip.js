#!/usr/bin/env node
// Drives the real s3db.js 21.6.2 for the s3db_nb compatibility tests; prints one JSON document.
//
//   node roundtrip.js read  <connection> [resource ...]   every resource's getAll() and get(id)
//   node roundtrip.js write <connection> <spec.json>      create resources, run ops, then read
//   node roundtrip.js run   <plan.json>                   {"steps": [{"connection", "spec"}...]}
//
// A spec is {"resources": [{name, attributes, behavior, timestamps, partitions}], "ops": [...],
// "read": true|false|[names]}; ops are insert / update / delete / setContent (base64 body).
// Several steps in one plan share one Node process (start-up is most of the cost).
// Run under `timeout -s KILL`: s3db.js catches SIGTERM, and retries 404s with back-off.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { S3db } from 's3db.js';

const PASSPHRASE = process.env.S3DB_PASSPHRASE || 'secret';

function open(connectionString) {
  const options = { connectionString, logLevel: 'silent', security: { passphrase: PASSPHRASE } };
  if (/^https?:/.test(connectionString)) {
    // recker 1.0.56 (the newest on this registry) fails on HTTP 204: use the AWS SDK handler
    options.clientOptions = { httpClientOptions: { useReckerHandler: false } };
  }
  return new S3db(options);
}

function errorText(err) {
  return `${err && err.name ? err.name : 'Error'}: ${err && err.message ? err.message : String(err)}`;
}

async function createResources(db, resources) {
  for (const def of resources || []) {
    const config = { name: def.name, attributes: def.attributes };
    for (const key of ['behavior', 'timestamps', 'partitions', 'paranoid', 'idSize']) {
      if (def[key] !== undefined) config[key] = def[key];
    }
    if (config.partitions === undefined) config.partitions = {};
    await db.createResource(config);
  }
}

async function runOps(db, ops) {
  const results = [];
  for (const op of ops || []) {
    const resource = db.resources[op.resource];
    const entry = { op: op.op, resource: op.resource, id: op.id ?? op.data?.id };
    if (process.env.S3DB_COMPAT_TRACE) process.stderr.write(`${Date.now() % 100000} ${op.op} ${op.resource} ${entry.id}\n`);
    try {
      if (!resource) throw new Error(`no resource ${op.resource}`);
      if (op.op === 'insert') {
        const rec = await resource.insert(op.data);
        entry.id = rec.id;
      } else if (op.op === 'update') {
        await resource.update(op.id, op.data);
      } else if (op.op === 'delete') {
        await resource.delete(op.id);
      } else if (op.op === 'setContent') {
        await resource.setContent({ id: op.id, buffer: Buffer.from(op.base64, 'base64'), contentType: op.contentType });
      } else {
        throw new Error(`unknown op ${op.op}`);
      }
      entry.ok = true;
    } catch (err) {
      entry.ok = false;
      entry.error = errorText(err);
    }
    results.push(entry);
  }
  return results;
}

async function readResource(resource) {
  const out = { ids: [], records: {}, errors: {}, content: {} };
  try {
    const all = await resource.getAll();
    out.ids = all.map((r) => r.id).sort();
  } catch (err) {
    out.getAllError = errorText(err);
    out.ids = (await resource.listIds()).sort();
  }
  for (const id of out.ids) {
    try {
      out.records[id] = await resource.get(id);
    } catch (err) {
      out.errors[id] = errorText(err);
      continue;
    }
    try {
      if (await resource.hasContent(id)) {
        const content = await resource.content(id);
        if (content && content.buffer && out.records[id]._mimeType !== 'application/json') {
          out.content[id] = { base64: Buffer.from(content.buffer).toString('base64'), contentType: content.contentType };
        }
      }
    } catch (err) {
      out.content[id] = { error: errorText(err) };
    }
  }
  return out;
}

export async function runStep(step) {
  const db = open(step.connection);
  const spec = step.spec || {};
  const result = { connection: step.connection.replace(/\/\/[^@/]*@/, '//***@') };
  try {
    await db.connect();
    await createResources(db, spec.resources);
    result.ops = await runOps(db, spec.ops);
    const wanted = Array.isArray(spec.read) ? spec.read : (spec.read === false ? [] : Object.keys(db.resources));
    result.resources = {};
    for (const name of wanted.sort()) {
      if (!db.resources[name]) {
        result.resources[name] = { missing: true };
        continue;
      }
      result.resources[name] = await readResource(db.resources[name]);
    }
    result.metadata = db.savedMetadata ?? null;
  } catch (err) {
    result.error = errorText(err);
  } finally {
    try { await db.disconnect(); } catch { /* the result is what matters */ }
  }
  return result;
}

async function main(argv) {
  const [command, ...args] = argv;
  let steps;
  if (command === 'read') {
    steps = [{ connection: args[0], spec: { read: args.length > 1 ? args.slice(1) : true } }];
  } else if (command === 'write') {
    steps = [{ connection: args[0], spec: JSON.parse(readFileSync(args[1], 'utf8')) }];
  } else if (command === 'run') {
    steps = JSON.parse(readFileSync(args[0], 'utf8')).steps;
  } else {
    process.stderr.write('usage: roundtrip.js read <connection> [resource...] | write <connection> <spec.json> | run <plan.json>\n');
    process.exit(2);
  }
  const results = [];
  for (const step of steps) results.push(await runStep(step));
  return JSON.stringify({ s3dbjs: '21.6.2', steps: results }) + '\n';
}

export function finish(promise) {
  // s3db.js keeps timers alive after disconnect(): exit explicitly, once stdout (a pipe,
  // written asynchronously) has taken the whole document
  promise.then(
    (text) => process.stdout.write(text, () => process.exit(0)),
    (err) => { process.stderr.write(errorText(err) + '\n'); process.exit(1); },
  );
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) finish(main(process.argv.slice(2)));
