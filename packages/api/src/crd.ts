/**
 * The FineTuneJob CustomResourceDefinition, derived from the same TypeBox schema as the types
 * and the validator. JSON Schema is turned into a Kubernetes *structural* schema: literal unions
 * become enums, `const` becomes a one-value enum, exclusive bounds take OpenAPI v3.0's boolean
 * form, records become additionalProperties, string-or-number becomes int-or-string, and unknown
 * fields are pruned by the API server instead of listed as additionalProperties: false, and
 * uniqueItems (forbidden there) becomes x-kubernetes-list-type: set. Rules the
 * schema cannot state are CEL validations (x-kubernetes-validations).
 */
import { stringify } from 'yaml';
import { API_GROUP, API_VERSION, KIND, FineTuneJobSpec, FineTuneJobStatusSchema } from './schema.js';

type Json = Record<string, unknown>;

const PLURAL = 'finetunejobs';

function isStringLiteralUnion(s: Json): string[] | undefined {
  const anyOf = s.anyOf as Json[] | undefined;
  if (!anyOf || !anyOf.every((b) => typeof b.const === 'string')) return undefined;
  return anyOf.map((b) => b.const as string);
}

/** Converts one TypeBox (JSON Schema) node to a Kubernetes structural schema node. */
export function toStructural(schema: Json): Json {
  const literals = isStringLiteralUnion(schema);
  const out: Json = {};
  if (schema.description) out.description = schema.description;
  if (literals) {
    out.type = 'string';
    out.enum = literals;
    if (schema.default !== undefined) out.default = schema.default;
    return out;
  }
  if (schema.const !== undefined) {
    out.type = typeof schema.const;
    out.enum = [schema.const];
    return out;
  }
  const anyOf = schema.anyOf as Json[] | undefined;
  if (anyOf) {
    const types = new Set(anyOf.map((b) => b.type));
    if (types.has('string') && (types.has('number') || types.has('integer')) && types.size === 2) {
      out['x-kubernetes-int-or-string'] = true;
      return out;
    }
    throw new Error(`cannot express this union in a structural schema: ${JSON.stringify(schema)}`);
  }
  const type = schema.type as string | undefined;
  if (type) out.type = type;
  for (const key of ['minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'format', 'minItems', 'maxItems', 'default'] as const) {
    if (schema[key] !== undefined) out[key] = schema[key];
  }
  // The API server forbids uniqueItems (quadratic); a list of scalars typed 'set' is checked for
  // duplicates instead.
  if (schema.uniqueItems === true) out['x-kubernetes-list-type'] = 'set';
  if (typeof schema.exclusiveMinimum === 'number') {
    out.minimum = schema.exclusiveMinimum;
    out.exclusiveMinimum = true;
  }
  if (typeof schema.exclusiveMaximum === 'number') {
    out.maximum = schema.exclusiveMaximum;
    out.exclusiveMaximum = true;
  }
  if (type === 'array' && schema.items) out.items = toStructural(schema.items as Json);
  if (type === 'object') {
    const props = schema.properties as Record<string, Json> | undefined;
    const patterns = schema.patternProperties as Record<string, Json> | undefined;
    if (props) {
      out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, toStructural(v)]));
      const required = (schema.required as string[] | undefined)?.filter((r) => props[r]?.default === undefined);
      if (required && required.length > 0) out.required = required;
      // Open objects (a Kubernetes volume: name + any source) keep the fields we do not list.
      if (schema.additionalProperties === true) out['x-kubernetes-preserve-unknown-fields'] = true;
    } else if (patterns) {
      out.additionalProperties = toStructural(Object.values(patterns)[0]!);
    } else {
      out['x-kubernetes-preserve-unknown-fields'] = true;
    }
  }
  return out;
}

/** CEL rules for what the schema alone cannot say (the validator checks the same rules). */
const SPEC_RULES = [
  { rule: 'has(self.dataset.builtin) != has(self.dataset.train)', message: 'spec.dataset: give either builtin or train, not both' },
  { rule: 'self.training.batchSize % self.workers.replicas == 0', message: 'spec.training.batchSize must be divisible by spec.workers.replicas' },
  { rule: 'self.training.batchSize % self.training.gradientAccumulationSteps == 0', message: 'spec.training.gradientAccumulationSteps must divide spec.training.batchSize' },
  {
    rule: '!has(self.workers.volumeMounts) || self.workers.volumeMounts.all(m, has(self.workers.volumes) && self.workers.volumes.exists(v, v.name == m.name))',
    message: 'spec.workers.volumeMounts: every mount must name a volume in spec.workers.volumes',
  },
  { rule: "!has(self.dataset.digits) || (has(self.dataset.builtin) && self.dataset.builtin == 'mnist')", message: "spec.dataset.digits applies only to builtin 'mnist'" },
];

/** Fields a running job cannot change: they define what is being trained. */
const IMMUTABLE = ['model', 'dataset', 'trainable', 'training'] as const;

/** The status schema, with conditions as a map keyed by type (as metav1.Condition lists are). */
function statusSchema(): Json {
  const status = toStructural(FineTuneJobStatusSchema as unknown as Json);
  const conditions = (status.properties as Record<string, Json>).conditions!;
  conditions['x-kubernetes-list-type'] = 'map';
  conditions['x-kubernetes-list-map-keys'] = ['type'];
  return status;
}

export function buildCrd(): Json {
  const spec = toStructural(FineTuneJobSpec as unknown as Json);
  const specProps = spec.properties as Record<string, Json>;
  for (const field of IMMUTABLE) {
    const prop = specProps[field];
    if (prop) prop['x-kubernetes-validations'] = [{ rule: 'self == oldSelf', message: `spec.${field} cannot change after the job is created` }];
  }
  spec['x-kubernetes-validations'] = SPEC_RULES;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: 'finetunejob', shortNames: ['ftj'], categories: ['all'] },
      scope: 'Namespaced',
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
            { name: 'Workers', type: 'string', jsonPath: '.status.workersReady', description: 'ready/total workers' },
            { name: 'Progress', type: 'string', jsonPath: '.status.progress' },
            { name: 'Restarts', type: 'integer', jsonPath: '.status.restarts', priority: 1 },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'A FineTuneJob fine-tunes a pre-trained ONNX model on data-parallel workers.',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                status: statusSchema(),
              },
            },
          },
        },
      ],
    },
  };
}

export function renderCrdYaml(): string {
  return `# Generated from packages/api/src/schema.ts by tools/docs.mjs; do not edit by hand.\n${stringify(buildCrd(), { lineWidth: 0 })}`;
}
