#!/usr/bin/env node
// Writes the golden fixture bucket with the real s3db.js 21.6.2 into a file:// folder and prints
// what s3db.js itself reads back (JSON). tests/compat/regenerate.py runs it and commits the
// raw objects; the spec (resources × records × operations) comes from tests/compat/matrix.py:
//
//   python tests/compat/matrix.py > spec.json && node write_fixtures.js /abs/folder spec.json
//
// The spec covers every attribute type × every behavior × timestamps on/off, partitions,
// nested objects, unicode, values over the 2 KB budget, secrets, passwords, binary content,
// updates (truncate-data ones included: they are kept out of the live tests) and deletes.
import { readFileSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { runStep, finish } from './roundtrip.js';

async function main([folder, specPath]) {
  if (!folder || !specPath) {
    process.stderr.write('usage: write_fixtures.js <folder> <spec.json>\n');
    process.exit(2);
  }
  const root = resolve(folder);
  mkdirSync(root, { recursive: true });
  const spec = JSON.parse(readFileSync(specPath, 'utf8'));
  const result = await runStep({ connection: `file://${root}`, spec });
  return JSON.stringify({ s3dbjs: '21.6.2', steps: [result] }) + '\n';
}

finish(main(process.argv.slice(2)));
