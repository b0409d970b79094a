#!/usr/bin/env node
// Drives s3db.js 21.6.2's S3QueuePlugin for tests/compat/test_live_s3queue.py; prints one JSON document.
//
//   node s3queue.js <plan.json>
//
// plan: {"connection", "resource", "attributes", "orderingMode", "enqueue": [records], "process": {"until": "count"|"drained",
//        "expected": n, "concurrency": n, "failOnce": [ids], "delayMs": n, "timeoutMs": n}, "goFile": path}
// With "goFile", the script prints {"ready": true} once connected and waits for that file before working
// (so a Python worker can start at the same moment). Output: the ids its handler saw, the entries of
// the queue resource as s3db.js reads them, queueStats() and the worker id.
//
// s3db.js 21.6.2 loads node-cron (an optional peer dependency, not installed here) when workers start;
// under NODE_ENV=test it uses its own in-memory scheduler instead, so the variable is set before import.
// Run under `timeout -s KILL`: s3db.js catches SIGTERM.
import { existsSync, readFileSync } from 'node:fs';

process.env.NODE_ENV = process.env.NODE_ENV || 'test';
const { S3db, S3QueuePlugin } = await import('s3db.js');

function open(connectionString) {
  const options = { connectionString, logLevel: 'silent' };
  if (/^https?:/.test(connectionString)) {
    // recker 1.0.56 (the newest on this registry) fails on HTTP 204: use the AWS SDK handler
    options.clientOptions = { httpClientOptions: { useReckerHandler: false } };
  }
  return new S3db(options);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const errorText = (err) => `${err && err.name ? err.name : 'Error'}: ${err && err.message ? err.message : String(err)}`;

async function run(plan) {
  const db = open(plan.connection);
  await db.connect();
  await db.createResource({ name: plan.resource, attributes: plan.attributes });
  const queue = new S3QueuePlugin({
    resource: plan.resource,
    enableCoordinator: false, // s3db.js's ticket coordinator has no Python counterpart: plain claims
    autoStart: false,
    logLevel: 'silent',
    pollInterval: 100,
    maxPollInterval: 400,
    visibilityTimeout: 30000,
    orderingMode: plan.orderingMode || 'fifo',
  });
  await db.usePlugin(queue);
  const resource = db.resources[plan.resource];
  const out = { workerId: queue.workerId, queueResource: queue.queueResourceName, enqueued: [], handled: [], acked: [], events: [] };
  const started = Date.now();
  for (const name of ['message-completed', 'message-retry', 'message-recovered', 'message-failed', 'message-dead']) {
    queue.on(`plg:s3-queue:${name}`, (event) => out.events.push([Date.now() - started, name, event.originalId]));
  }
  if (plan.goFile) {
    process.stdout.write(JSON.stringify({ ready: true }) + '\n');
    while (!existsSync(plan.goFile)) await sleep(10);
  }
  for (const record of plan.enqueue || []) {
    const stored = await resource.enqueue(record);
    out.enqueued.push(stored.id);
  }
  const spec = plan.process;
  if (spec) {
    const failOnce = new Set(spec.failOnce || []);
    await resource.startProcessing(async (record, context) => {
      out.handled.push(record.id);
      if (spec.delayMs) await sleep(spec.delayMs);
      if (failOnce.has(record.id) && context.attempts === 1) throw new Error(`node fails ${record.id} once`);
      await context.ack({ by: 'node', n: record.n ?? null, attempts: context.attempts });
      out.acked.push(record.id);
    }, { concurrency: spec.concurrency || 2 });
    const deadline = Date.now() + (spec.timeoutMs || 60000);
    while (Date.now() < deadline) {
      if (spec.until === 'count' && out.acked.length >= spec.expected) break;
      if (spec.until === 'drained') {
        // queueStats() cannot tell (s3db.js counts every status as the total): read the entries
        const entries = await db.resources[queue.queueResourceName].getAll();
        if (entries.length && entries.every((e) => ['completed', 'failed', 'dead'].includes(e.status))) break;
      }
      await sleep(200);
    }
    await resource.stopProcessing();
  }
  out.entries = await db.resources[queue.queueResourceName].getAll();
  out.stats = await resource.queueStats();
  await db.disconnect();
  return out;
}

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
run(plan).then(
  (result) => process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0)),
  (err) => { process.stderr.write(errorText(err) + '\n' + (err && err.stack ? err.stack : '') + '\n'); process.exit(1); },
);
