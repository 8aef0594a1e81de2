/** The docs' generated sections (op list, FineTuneJob field table) must match the code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

test('docs generated from code are up to date (run `npm run docs` to refresh)', () => {
  const tool = fileURLToPath(new URL('../../../tools/docs.mjs', import.meta.url));
  const res = spawnSync(process.execPath, [tool, '--check'], { encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
});
