/** The FineTuneJob field reference, rendered from the schema (docs/finetunejob.md embeds it). */
import { FineTuneJobSpec } from './schema.js';

interface JsonSchema {
  type?: string;
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  patternProperties?: Record<string, JsonSchema>;
}

function typeOf(s: JsonSchema): string {
  if (s.anyOf) {
    const consts = s.anyOf.filter((x) => x.const !== undefined).map((x) => JSON.stringify(x.const));
    return consts.length === s.anyOf.length ? consts.join(' \\| ') : s.anyOf.map(typeOf).join(' \\| ');
  }
  if (s.type === 'array') return `${typeOf(s.items ?? {})}[]`;
  if (s.type === 'object' && s.patternProperties) return 'map';
  const bounds: string[] = [];
  if (s.minimum !== undefined) bounds.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) bounds.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) bounds.push(`< ${s.exclusiveMaximum}`);
  return `${s.type ?? 'any'}${bounds.length ? ` (${bounds.join(', ')})` : ''}`;
}

function rows(schema: JsonSchema, prefix: string, out: string[]): void {
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}.${name}`;
    const required = schema.required?.includes(name) && child.default === undefined;
    const dflt = child.default !== undefined && !(typeof child.default === 'object') ? `\`${JSON.stringify(child.default)}\`` : '';
    out.push(`| \`${path}\` | ${typeOf(child)} | ${required ? 'yes' : ''} | ${dflt} | ${(child.description ?? '').replace(/\|/g, '\\|')} |`);
    if (child.type === 'object' && child.properties) rows(child, path, out);
    if (child.type === 'array' && child.items?.properties) rows(child.items, `${path}[]`, out);
  }
}

/** A Markdown table of every spec field: path, type, required, default, description. */
export function renderFieldTable(): string {
  const out = ['| field | type | required | default | description |', '| --- | --- | --- | --- | --- |'];
  rows(FineTuneJobSpec as unknown as JsonSchema, 'spec', out);
  return out.join('\n');
}
