/**
 * The executables: `ftjob-worker` (what worker pods run) is `ftjob worker` started with the V8
 * options of WORKER_NODE_ARGS, which Node takes only on its command line (hence its shebang).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WORKER_NODE_ARGS } from '@finetune/controller';

const WORKER_BIN = fileURLToPath(new URL('../bin/ftjob-worker.js', import.meta.url));

test('ftjob-worker: its shebang carries WORKER_NODE_ARGS, node gets them, and it runs `ftjob worker`', () => {
  assert.equal(readFileSync(WORKER_BIN, 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${WORKER_NODE_ARGS.join(' ')}`);
  assert.ok((statSync(WORKER_BIN).mode & 0o111) !== 0, 'executable, as an image runs it');
  // Run as a program (the shebang, not `node file`), reporting the options node started with.
  const probe = '--import=data:text/javascript,process.stderr.write(JSON.stringify(process.execArgv))';
  const res = spawnSync(WORKER_BIN, ['--help'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: probe } });
  assert.equal(res.status, 0, res.stderr);
  assert.deepEqual(JSON.parse(/^\[[^\]]*\]/.exec(res.stderr)![0]), [...WORKER_NODE_ARGS]);
  assert.match(res.stdout, /^Usage: ftjob worker \[options\] <job>/);
});
