import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { buildCrd, renderCrdYaml } from './crd.js';

type Node = Record<string, unknown>;

/** Kubernetes structural-schema rules that a naive JSON Schema would break. */
function checkStructural(node: Node, path: string, problems: string[]): void {
  for (const banned of ['const', 'anyOf', 'oneOf', 'allOf', 'patternProperties', '$id', 'additionalItems', 'uniqueItems']) {
    if (banned in node) problems.push(`${path}: has '${banned}'`);
  }
  if (node.additionalProperties === false) problems.push(`${path}: additionalProperties: false`);
  const hasType = typeof node.type === 'string' || node['x-kubernetes-int-or-string'] === true || node['x-kubernetes-preserve-unknown-fields'] === true;
  if (!hasType) problems.push(`${path}: no type`);
  if ('exclusiveMinimum' in node && typeof node.exclusiveMinimum !== 'boolean') problems.push(`${path}: numeric exclusiveMinimum`);
  for (const [k, v] of Object.entries((node.properties as Record<string, Node>) ?? {})) checkStructural(v, `${path}.${k}`, problems);
  if (node.items) checkStructural(node.items as Node, `${path}[]`, problems);
  if (typeof node.additionalProperties === 'object') checkStructural(node.additionalProperties as Node, `${path}{}`, problems);
}

test('the CRD schema is structural (what the API server requires)', () => {
  const crd = buildCrd() as { spec: { versions: { schema: { openAPIV3Schema: Node } }[] } };
  const problems: string[] = [];
  checkStructural(crd.spec.versions[0]!.schema.openAPIV3Schema, 'schema', problems);
  assert.deepEqual(problems, []);
});

test('enums, defaults and bounds carry over from the TypeBox schema', () => {
  const crd = parse(renderCrdYaml());
  const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;
  const optimizer = spec.properties.optimizer.properties;
  assert.deepEqual(optimizer.type, { description: 'the update rule', type: 'string', enum: ['adamw', 'sgd'], default: 'adamw' });
  assert.deepEqual({ min: optimizer.learningRate.minimum, excl: optimizer.learningRate.exclusiveMinimum, dflt: optimizer.learningRate.default }, { min: 0, excl: true, dflt: 1e-3 });
  assert.equal(spec.properties.workers.properties.resources.properties.limits.additionalProperties['x-kubernetes-int-or-string'], true);
  assert.deepEqual(spec.required, ['model', 'dataset']);
  assert.equal(crd.spec.names.shortNames[0], 'ftj');
  assert.ok(spec['x-kubernetes-validations'].some((r: { rule: string }) => r.rule.includes('has(self.dataset.builtin) != has(self.dataset.train)')));
  assert.equal(spec.properties.model['x-kubernetes-validations'][0].rule, 'self == oldSelf');
});
