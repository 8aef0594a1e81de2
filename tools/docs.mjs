#!/usr/bin/env node
// Regenerates the parts of docs/ (and the CRD) that are derived from code (between <!-- generated:NAME --> and
// <!-- /generated:NAME --> markers), so lists and tables are never hand-copied.
//   node tools/docs.mjs          rewrite the docs
//   node tools/docs.mjs --check  exit 1 if any generated section is stale (used by the tests)
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { supportedOps } from '@finetune/worker';
import { renderFieldTable, renderCrdYaml } from '@finetune/api';

const root = fileURLToPath(new URL('..', import.meta.url));

const sections = {
  'gradient-ops': () => supportedOps().map((op) => `\`${op}\``).join(', '),
  'finetunejob-fields': () => renderFieldTable(),
};

export function regenerate(text) {
  return text.replace(/(<!-- generated:([a-z-]+) -->\n)([\s\S]*?)(<!-- \/generated:\2 -->)/g, (_, open, name, _old, close) => {
    const make = sections[name];
    if (!make) throw new Error(`unknown generated section '${name}'`);
    return `${open}${make()}\n${close}`;
  });
}

const files = ['docs/autodiff.md', 'docs/finetunejob.md'];
const check = process.argv.includes('--check');
let stale = [];

// Whole generated files.
const generatedFiles = { 'deploy/helm/finetune-operator/crds/finetunejobs.finetune.dev.yaml': renderCrdYaml };
for (const [file, render] of Object.entries(generatedFiles)) {
  const path = root + file;
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {}
  const next = render();
  if (next !== current) {
    if (check) stale.push(file);
    else writeFileSync(path, next);
  }
}
for (const file of files) {
  const path = root + file;
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    continue;
  }
  const next = regenerate(text);
  if (next !== text) {
    if (check) stale.push(file);
    else writeFileSync(path, next);
  }
}
if (stale.length > 0) {
  console.error(`generated sections are stale in: ${stale.join(', ')} (run: node tools/docs.mjs)`);
  process.exit(1);
}
