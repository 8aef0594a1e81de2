/**
 * Parsing and validation of FineTuneJob documents: YAML → schema check (with defaults filled
 * in) → cross-field rules. Every problem is reported with the field's path and what was expected.
 */
import AjvModule, { type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { FineTuneJobSchema, type FineTuneJob } from './schema.js';

const Ajv = AjvModule.default ?? AjvModule;
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
const validateSchema = ajv.compile<FineTuneJob>(FineTuneJobSchema);

/** A FineTuneJob that fails parsing or validation; `problems` lists each field's problem. */
export class SpecError extends Error {
  override readonly name = 'SpecError';
  constructor(readonly source: string, readonly problems: string[]) {
    super(`${source}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`}`);
  }
}

/** Parses and validates a FineTuneJob from YAML (or JSON) text; `source` names it in errors. */
export function parseFineTuneJob(text: string, source = 'FineTuneJob'): FineTuneJob {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : 'YAML';
    throw new SpecError(source, [`${where}: ${e.message.split('\n')[0]}`]);
  }
  return validateFineTuneJob(doc.toJS(), source);
}

/** Validates a parsed object (filling in defaults, on a copy) and returns it typed. */
export function validateFineTuneJob(value: unknown, source = 'FineTuneJob'): FineTuneJob {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SpecError(source, ['expected a FineTuneJob object (apiVersion, kind, metadata, spec)']);
  }
  const job = structuredClone(value);
  if (!validateSchema(job)) throw new SpecError(source, describeErrors(validateSchema.errors ?? []));
  const problems = crossFieldProblems(job);
  if (problems.length > 0) throw new SpecError(source, problems);
  return job;
}

function fieldPath(instancePath: string): string {
  if (!instancePath) return '(top level)';
  return instancePath
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '');
}

/** One message per field: ajv reports every branch of a union, so keep the most useful. */
function describeErrors(errors: ErrorObject[]): string[] {
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) {
    const path = e.keyword === 'additionalProperties' || e.keyword === 'required' ? fieldPath(e.instancePath) + '#' + e.keyword + JSON.stringify(e.params) : fieldPath(e.instancePath);
    byPath.set(path, [...(byPath.get(path) ?? []), e]);
  }
  const messages: string[] = [];
  for (const group of byPath.values()) {
    const literalChoices = group.filter((e) => e.keyword === 'const').map((e) => JSON.stringify((e.params as { allowedValue: unknown }).allowedValue));
    const e = group.find((x) => x.keyword !== 'const' && x.keyword !== 'anyOf') ?? group[0]!;
    const path = fieldPath(e.instancePath);
    if (literalChoices.length > 0 && group.every((x) => x.keyword === 'const' || x.keyword === 'anyOf')) {
      messages.push(`${path}: must be ${literalChoices.length === 1 ? literalChoices[0] : `one of ${literalChoices.join(', ')}`}`);
      continue;
    }
    switch (e.keyword) {
      case 'additionalProperties': {
        const field = (e.params as { additionalProperty: string }).additionalProperty;
        const allowed = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
        const hint = closest(field, allowed);
        messages.push(`${path === '(top level)' ? '' : `${path}.`}${field}: unknown field${hint ? ` (did you mean '${hint}'?)` : allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`);
        break;
      }
      case 'required':
        messages.push(`${path === '(top level)' ? '' : `${path}.`}${(e.params as { missingProperty: string }).missingProperty}: required field is missing`);
        break;
      default:
        messages.push(`${path}: ${e.message ?? 'is invalid'}`);
    }
  }
  return messages;
}

/** The allowed name within edit distance 2, if any: catches 'epoch' for 'epochs', 'lr' does not guess. */
function closest(word: string, options: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestDistance) {
      best = o;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/** Rules the schema alone cannot state (they become CEL rules in the CRD). */
function crossFieldProblems(job: FineTuneJob): string[] {
  const { spec } = job;
  const problems: string[] = [];
  const ds = spec.dataset;
  if (!ds.builtin && !ds.train) problems.push('spec.dataset: give either builtin or train');
  if (ds.builtin && ds.train) problems.push('spec.dataset: give builtin or train, not both');
  if (ds.digits && ds.builtin !== 'mnist') problems.push("spec.dataset.digits: applies only to builtin 'mnist'");
  for (const key of ['train', 'validation'] as const) {
    const file = ds[key];
    const format = file?.format ?? (file?.path.endsWith('.npy') ? 'npy' : undefined);
    if (file && format === 'npy' && !file.labels) problems.push(`spec.dataset.${key}.labels: required for npy data (the file with the labels)`);
    if (file?.labels && format !== 'npy') problems.push(`spec.dataset.${key}.labels: applies only to the npy format`);
  }
  if (ds.textField && ds.featuresField) problems.push('spec.dataset: give textField or featuresField, not both');

  const t = spec.trainable;
  if (t) {
    const chosen = (['patterns', 'freezeBelow', 'headOnly'] as const).filter((k) => t[k] !== undefined && t[k] !== false);
    if (chosen.length > 1) problems.push(`spec.trainable: give at most one of patterns, freezeBelow, headOnly (got ${chosen.join(', ')})`);
  }

  const o = spec.optimizer;
  const onlyFor = (fields: (keyof typeof o)[], type: string) => {
    for (const f of fields) if (o[f] !== undefined && o.type !== type) problems.push(`spec.optimizer.${String(f)}: applies only to type '${type}'`);
  };
  onlyFor(['momentum', 'nesterov'], 'sgd');
  onlyFor(['beta1', 'beta2', 'eps'], 'adamw');
  if (o.nesterov && (o.momentum ?? 0.9) === 0) problems.push('spec.optimizer.nesterov: needs momentum > 0');
  if (spec.schedule.minLrRatio !== undefined && spec.schedule.type !== 'cosine') problems.push("spec.schedule.minLrRatio: applies only to type 'cosine'");
  if (spec.model.head && spec.training.loss !== 'cross_entropy') problems.push("spec.model.head: a classification head needs spec.training.loss 'cross_entropy'");
  if (spec.dataset.classes && spec.model.head && spec.dataset.classes.length !== spec.model.head.numClasses) {
    problems.push(`spec.dataset.classes: lists ${spec.dataset.classes.length} classes but spec.model.head.numClasses is ${spec.model.head.numClasses}`);
  }
  const volumeNames = new Set((spec.workers.volumes ?? []).map((v) => v.name));
  for (const [i, m] of (spec.workers.volumeMounts ?? []).entries()) {
    if (!volumeNames.has(m.name)) problems.push(`spec.workers.volumeMounts[${i}].name: '${m.name}' is not a volume in spec.workers.volumes`);
  }
  if (volumeNames.size !== (spec.workers.volumes ?? []).length) problems.push('spec.workers.volumes: volume names must be unique');
  if (spec.training.batchSize % spec.workers.replicas !== 0) {
    problems.push(`spec.training.batchSize: ${spec.training.batchSize} must be divisible by spec.workers.replicas (${spec.workers.replicas})`);
  }
  if (spec.training.batchSize % spec.training.gradientAccumulationSteps !== 0) {
    problems.push(`spec.training.gradientAccumulationSteps: must divide spec.training.batchSize (${spec.training.batchSize})`);
  }
  return problems;
}
