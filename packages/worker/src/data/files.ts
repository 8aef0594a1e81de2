/**
 * User datasets from files: JSON Lines, CSV/TSV and NumPy .npy pairs. Every error names the file,
 * the line (or example) and the field, since the user has to find and fix it by hand.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { UserError } from '../errors.js';
import { assertConsistent, type Dataset, type Feature, type Labels } from './dataset.js';
import { parseCsv } from './csv.js';
import { type ClassLabelOptions, type RawLabel, type ResolvedLabels, resolveClassLabels } from './labels.js';
import { type NpyArray, readNpy } from './npy.js';
import { emailBody, type Tokenizer } from './tokenizer.js';

export type DatasetFormat = 'jsonl' | 'csv' | 'tsv' | 'npy';

export interface CommonFileOptions extends ClassLabelOptions {
  /** The model input the features feed (the Dataset.features key). */
  inputName: string;
  /** 'class' (default): int64 class ids. 'regression': float32 targets (a number or array per example). */
  labelKind?: 'class' | 'regression';
}

export interface TextOptions {
  /** Needed for a text field, together with maxLength. */
  tokenizer?: Tokenizer;
  maxLength?: number;
  /** Prepend [CLS] to every sequence. Default false. */
  cls?: boolean;
  /** Drop everything up to the first blank line (email headers) before tokenizing. Default false. */
  emailBody?: boolean;
}

export interface JsonlOptions extends CommonFileOptions, TextOptions {
  /** A string field, tokenized into int64 ids of shape [maxLength]. */
  textField?: string;
  /** A number or (nested) numeric array field: float32 features of that shape. */
  featuresField?: string;
  /** Default 'label'. Class name (string) or class id (integer); a number or numbers for regression. */
  labelField?: string;
}

export interface CsvOptions extends CommonFileOptions, TextOptions {
  /** A text column (tokenized), instead of numeric feature columns. */
  textField?: string;
  /** Numeric feature columns, in this order; default: every column but the label (shape [count]). */
  featureFields?: string[];
  /** Default 'label'. Class name or integer id (integers count as ids unless `classes` names them). */
  labelField?: string;
  /** Default ',' (and tab for .tsv). */
  delimiter?: string;
}

export interface NpyOptions extends CommonFileOptions {
  /** uint8 features become float32 divided by 255 (true, default) or as they are (false). */
  scaleUint8?: boolean;
}

/** One spec for any format: `format` wins, else the extension of `path` decides. */
export interface DatasetFileSpec extends JsonlOptions, CsvOptions, NpyOptions {
  format?: DatasetFormat;
  /** The examples: the .jsonl/.csv file, or the features .npy. */
  path: string;
  /** npy only: the labels .npy (int64/int32 class ids, or floats for regression). */
  labelsPath?: string;
}

export function detectFormat(path: string): DatasetFormat {
  switch (extname(path).toLowerCase()) {
    case '.jsonl':
    case '.ndjson':
      return 'jsonl';
    case '.csv':
      return 'csv';
    case '.tsv':
      return 'tsv';
    case '.npy':
      return 'npy';
    default:
      throw new UserError(`${path}: cannot tell the dataset format from the file name; set format to jsonl, csv, tsv or npy`);
  }
}

export async function loadDatasetFiles(spec: DatasetFileSpec): Promise<Dataset> {
  const format = spec.format ?? detectFormat(spec.path);
  switch (format) {
    case 'jsonl':
      return loadJsonl(spec.path, spec);
    case 'csv':
      return loadCsv(spec.path, spec);
    case 'tsv':
      return loadCsv(spec.path, { ...spec, delimiter: spec.delimiter ?? '\t' });
    case 'npy':
      if (!spec.labelsPath) throw new UserError(`${spec.path}: an npy dataset needs labelsPath (the labels .npy) beside the features file`);
      return loadNpy(spec.path, spec.labelsPath, spec);
    default:
      throw new UserError(`unknown dataset format '${String(format)}'; use jsonl, csv, tsv or npy`);
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UserError(`${path}: cannot read: ${(err as Error).message}`);
  }
}

/** A growable float32 column, so large files need no intermediate JS arrays. */
class FloatColumn {
  private buf = new Float32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const bigger = new Float32Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.length++] = v;
  }
  finish(): Float32Array {
    return this.buf.slice(0, this.length);
  }
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Appends a number or nested numeric array to `out` in C order and returns its shape.
 * Throws a plain message (the caller adds where) for anything else or for ragged nesting.
 */
function flattenNumeric(v: unknown, out: FloatColumn, path = ''): number[] {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`${path ? `${path} ` : ''}is ${v}, not a finite number`);
    out.push(v);
    return [];
  }
  if (!Array.isArray(v)) {
    throw new Error(`${path ? `${path} ` : ''}must be a number or a (nested) array of numbers, not ${v === null ? 'null' : typeof v}`);
  }
  let inner: number[] | undefined;
  v.forEach((x, i) => {
    const s = flattenNumeric(x, out, `${path}[${i}]`);
    if (inner === undefined) inner = s;
    else if (shapeText(s) !== shapeText(inner)) throw new Error(`is ragged: ${path}[${i}] has shape ${shapeText(s)} but ${path}[0] has ${shapeText(inner)}`);
  });
  return [v.length, ...(inner ?? [])];
}

/** Collects per-example numeric values whose shape must agree with the first example's. */
class NumericField {
  readonly column = new FloatColumn();
  shape: number[] | undefined;
  private firstWhere = '';
  constructor(private readonly what: string) {}
  add(v: unknown, where: string): void {
    let s: number[];
    try {
      s = flattenNumeric(v, this.column);
    } catch (err) {
      throw new UserError(`${where}: ${this.what} ${(err as Error).message}`);
    }
    if (this.shape === undefined) {
      this.shape = s;
      this.firstWhere = where;
    } else if (shapeText(s) !== shapeText(this.shape)) {
      throw new UserError(`${where}: ${this.what} has shape ${shapeText(s)}, but ${this.firstWhere} has ${shapeText(this.shape)}`);
    }
  }
}

function checkTextOptions(source: string, field: string, opts: TextOptions): { tokenizer: Tokenizer; maxLength: number } {
  const { tokenizer, maxLength } = opts;
  if (!tokenizer || maxLength === undefined) throw new UserError(`${source}: text field '${field}' needs a tokenizer and maxLength`);
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new UserError(`maxLength must be a positive integer, got ${maxLength}`);
  return { tokenizer, maxLength };
}

function textFeature(texts: readonly string[], opts: TextOptions & { tokenizer: Tokenizer; maxLength: number }): Feature {
  const { tokenizer, maxLength, cls = false } = opts;
  const data = new BigInt64Array(texts.length * maxLength);
  texts.forEach((t, i) => tokenizer.encodeInto(opts.emailBody ? emailBody(t) : t, maxLength, data, i * maxLength, { cls }));
  return { type: 'int64', shape: [maxLength], data };
}

interface LabelColumn {
  labels: Labels;
  classes?: string[];
}

function classColumn({ ids, classes }: ResolvedLabels): LabelColumn {
  const labels: Labels = { type: 'int64', shape: [], data: ids };
  return classes ? { labels, classes } : { labels };
}

/** Builds the label column from per-example raw values, class ids or regression targets. */
class LabelCollector {
  private readonly raw: RawLabel[] = [];
  private readonly wheres: string[] = [];
  private readonly targets: NumericField;
  constructor(private readonly opts: CommonFileOptions, field: string) {
    this.targets = new NumericField(`label field '${field}'`);
  }
  add(v: unknown, where: string): void {
    if (this.opts.labelKind === 'regression') return this.targets.add(v, where);
    if (typeof v !== 'string' && typeof v !== 'number') {
      const got = v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
      throw new UserError(`${where}: label must be a class name or an integer class id, not ${got}`);
    }
    this.raw.push(v);
    this.wheres.push(where);
  }
  finish(): LabelColumn {
    if (this.opts.labelKind === 'regression') {
      return { labels: { type: 'float32', shape: this.targets.shape ?? [], data: this.targets.column.finish() } };
    }
    return classColumn(resolveClassLabels(this.raw, (i) => this.wheres[i]!, this.opts));
  }
}

function finishDataset(source: string, length: number, inputName: string, feature: Feature, labels: LabelColumn): Dataset {
  if (length === 0) throw new UserError(`${source}: no examples`);
  const { labels: l, classes } = labels;
  const ds: Dataset = { length, features: { [inputName]: feature }, labels: l };
  if (classes) ds.classes = classes;
  assertConsistent(ds);
  return ds;
}

function checkChoice(source: string, text: string | undefined, features: unknown, inputName: string): void {
  if (!inputName) throw new UserError(`${source}: inputName (the model input the features feed) is required`);
  if (text !== undefined && features !== undefined) throw new UserError(`${source}: give a text field or feature fields, not both`);
}

/** The objects of a JSON Lines text with their locations; blank lines are skipped but counted. */
function* jsonlRows(text: string, path: string): Generator<{ obj: Record<string, unknown>; where: string }> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/^\uFEFF/, '').trim();
    if (line === '') continue;
    const where = `${path} line ${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new UserError(`${where}: invalid JSON: ${(err as Error).message}`);
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new UserError(`${where}: expected a JSON object`);
    yield { obj: row as Record<string, unknown>, where };
  }
}

function textOf(obj: Record<string, unknown>, field: string, where: string): string {
  const t = obj[field];
  if (t === undefined) throw new UserError(`${where}: missing text field '${field}'`);
  if (typeof t !== 'string') throw new UserError(`${where}: text field '${field}' must be a string, not ${t === null ? 'null' : typeof t}`);
  return t;
}

/** JSON Lines: one object per line. */
export async function loadJsonl(path: string, opts: JsonlOptions): Promise<Dataset> {
  const { textField, featuresField, labelField = 'label', inputName } = opts;
  checkChoice(path, textField, featuresField, inputName);
  if (textField === undefined && featuresField === undefined) throw new UserError(`${path}: set textField or featuresField`);
  const text = textField !== undefined ? checkTextOptions(path, textField, opts) : undefined;
  const texts: string[] = [];
  const numeric = new NumericField(`field '${featuresField}'`);
  const labels = new LabelCollector(opts, labelField);

  let count = 0;
  for (const { obj, where } of jsonlRows(await readText(path), path)) {
    count++;
    if (textField !== undefined) {
      texts.push(textOf(obj, textField, where));
    } else {
      const f = obj[featuresField!];
      if (f === undefined) throw new UserError(`${where}: missing features field '${featuresField}'`);
      numeric.add(f, where);
    }
    const label = obj[labelField];
    if (label === undefined) throw new UserError(`${where}: missing label field '${labelField}'`);
    labels.add(label, where);
  }

  const feature: Feature = text
    ? textFeature(texts, { ...opts, ...text })
    : { type: 'float32', shape: numeric.shape ?? [], data: numeric.column.finish() };
  return finishDataset(path, count, inputName, feature, labels.finish());
}

/** CSV with a header row. Numeric feature columns (shape [columns]) or one text column. */
export async function loadCsv(path: string, opts: CsvOptions): Promise<Dataset> {
  const { textField, featureFields, labelField = 'label', inputName, delimiter = ',' } = opts;
  checkChoice(path, textField, featureFields, inputName);
  const records = parseCsv(await readText(path), path, delimiter);
  if (records.length === 0) throw new UserError(`${path}: empty file (a header row is needed)`);
  const [head, ...rows] = records;
  const header = head!.fields.map((h) => h.trim());
  const column = (name: string, role: string): number => {
    const at = header.indexOf(name);
    if (at < 0) throw new UserError(`${path}: no ${role} column '${name}' in the header (columns: ${header.join(', ')})`);
    return at;
  };
  const labelAt = column(labelField, 'label');
  const text = textField !== undefined ? checkTextOptions(path, textField, opts) : undefined;
  const textAt = textField !== undefined ? column(textField, 'text') : -1;
  const featureNames = textField !== undefined ? [] : (featureFields ?? header.filter((_, i) => i !== labelAt));
  const featureAt = featureNames.map((f) => column(f, 'feature'));
  if (textField === undefined && featureAt.length === 0) throw new UserError(`${path}: no feature columns besides the label '${labelField}'`);

  const named = new Set(opts.classes ?? []);
  const rawLabels: string[] = [];
  const texts: string[] = [];
  const values = new Float32Array(rows.length * featureAt.length);
  rows.forEach((r, k) => {
    const where = `${path} line ${r.line}`;
    if (r.fields.length !== header.length) throw new UserError(`${where}: ${r.fields.length} fields, but the header has ${header.length}`);
    const label = r.fields[labelAt]!.trim();
    if (label === '') throw new UserError(`${where}: missing label in column '${labelField}'`);
    rawLabels.push(label);
    if (textAt >= 0) texts.push(r.fields[textAt]!);
    featureAt.forEach((c, j) => {
      const cell = r.fields[c]!.trim();
      const v = Number(cell);
      if (cell === '' || !Number.isFinite(v)) {
        throw new UserError(`${where}, column '${featureNames[j]}': ${cell === '' ? 'empty value' : `'${cell}'`} is not a number`);
      }
      values[k * featureAt.length + j] = v;
    });
  });

  // CSV cells are all strings: integers are ids unless `classes` names them, and only when every
  // label is an integer (else "3" in a file of names would silently become id 3).
  const isInt = (s: string) => /^\d+$/.test(s);
  const allInts = rawLabels.every(isInt);
  const labels = new LabelCollector(opts, labelField);
  rawLabels.forEach((l, k) => {
    const where = `${path} line ${rows[k]!.line}`;
    if (opts.labelKind === 'regression') {
      const v = Number(l);
      if (!Number.isFinite(v)) throw new UserError(`${where}, column '${labelField}': '${l}' is not a number`);
      return labels.add(v, where);
    }
    labels.add(named.has(l) || !(opts.classes ? isInt(l) : allInts) ? l : Number(l), where);
  });

  const feature: Feature = text
    ? textFeature(texts, { ...opts, ...text })
    : { type: 'float32', shape: [featureAt.length], data: values };
  return finishDataset(path, rows.length, inputName, feature, labels.finish());
}

/**
 * features.npy (first axis = examples) + labels.npy. float32/float64 features become float32
 * (uint8 and bool too, uint8 scaled to [0, 1] unless scaleUint8 is false); integer features
 * become int64, as token ids. Integer labels are class ids; float labels need labelKind 'regression'.
 */
export async function loadNpy(featuresPath: string, labelsPath: string, opts: NpyOptions): Promise<Dataset> {
  const { inputName, scaleUint8 = true } = opts;
  checkChoice(featuresPath, undefined, undefined, inputName);
  const x = await readNpy(featuresPath);
  const y = await readNpy(labelsPath);
  if (x.shape.length === 0) throw new UserError(`${featuresPath}: a scalar; the first axis must count the examples`);
  if (y.shape.length === 0) throw new UserError(`${labelsPath}: a scalar; the first axis must count the examples`);
  const n = x.shape[0]!;
  if (y.shape[0] !== n) throw new UserError(`${featuresPath} has ${n} examples but ${labelsPath} has ${y.shape[0]}`);

  let labels: LabelColumn;
  if (opts.labelKind === 'regression') {
    labels = { labels: { type: 'float32', shape: y.shape.slice(1), data: Float32Array.from(y.data as ArrayLike<number | bigint>, Number) } };
  } else {
    if (y.dtype === 'float32' || y.dtype === 'float64' || y.dtype === 'bool') {
      throw new UserError(`${labelsPath}: dtype ${y.dtype}; class labels must be integers (int64 or int32), or set labelKind 'regression'`);
    }
    if (!(y.shape.length === 1 || (y.shape.length === 2 && y.shape[1] === 1))) {
      throw new UserError(`${labelsPath}: class labels must have shape (${n},), got (${y.shape.join(', ')})`);
    }
    const raw = Array.from(y.data as ArrayLike<number | bigint>, Number);
    labels = classColumn(resolveClassLabels(raw, (i) => `${labelsPath} example ${i}`, opts));
  }
  return finishDataset(featuresPath, n, inputName, npyFeature(x, scaleUint8), labels);
}

function npyFeature(a: NpyArray, scaleUint8: boolean): Feature {
  const shape = a.shape.slice(1);
  switch (a.dtype) {
    case 'float32':
      return { type: 'float32', shape, data: a.data as Float32Array };
    case 'float64':
    case 'bool':
      return { type: 'float32', shape, data: Float32Array.from(a.data as Float64Array | Uint8Array) };
    case 'uint8': {
      const data = Float32Array.from(a.data as Uint8Array);
      if (scaleUint8) for (let i = 0; i < data.length; i++) data[i] /= 255;
      return { type: 'float32', shape, data };
    }
    case 'int64':
      return { type: 'int64', shape, data: a.data as BigInt64Array };
    default:
      return { type: 'int64', shape, data: BigInt64Array.from(a.data as Int32Array, (v) => BigInt(v)) };
  }
}

/**
 * The raw texts of a JSONL or CSV text dataset, in file order: what a tokenizer is trained on
 * before the dataset itself can be loaded.
 */
export async function readTexts(spec: Pick<DatasetFileSpec, 'path' | 'format' | 'textField' | 'delimiter' | 'emailBody'>): Promise<string[]> {
  const { path, textField } = spec;
  if (textField === undefined) throw new UserError(`${path}: textField is needed to read texts`);
  const format = spec.format ?? detectFormat(path);
  const strip = (t: string) => (spec.emailBody ? emailBody(t) : t);
  if (format === 'jsonl') {
    return [...jsonlRows(await readText(path), path)].map(({ obj, where }) => strip(textOf(obj, textField, where)));
  }
  if (format === 'csv' || format === 'tsv') {
    const [head, ...rows] = parseCsv(await readText(path), path, spec.delimiter ?? (format === 'tsv' ? '\t' : ','));
    const at = head?.fields.map((h) => h.trim()).indexOf(textField) ?? -1;
    if (at < 0) throw new UserError(`${path}: no text column '${textField}' in the header`);
    return rows.map((r) => strip(r.fields[at] ?? ''));
  }
  throw new UserError(`${path}: ${format} files hold no texts`);
}
