/**
 * A word-level tokenizer small enough to travel inside the model: its JSON goes into the ONNX
 * model's metadata_props under TOKENIZER_METADATA_KEY, so whoever serves the exported model can
 * turn text into the same ids the model was trained on.
 */
import { UserError } from '../errors.js';

export const TOKENIZER_METADATA_KEY = 'finetune.tokenizer';

export const PAD_ID = 0;
export const UNK_ID = 1;
export const MASK_ID = 2;
export const CLS_ID = 3;
/** Ids 0..3, in this order, in every vocabulary. */
export const SPECIAL_TOKENS: readonly string[] = ['[PAD]', '[UNK]', '[MASK]', '[CLS]'];

export interface TokenizerTrainOptions {
  /** Size of the whole vocabulary, the 4 special tokens included (= embedding rows). */
  vocabSize: number;
  /** Words seen fewer times than this are left out. Default 1. */
  minCount?: number;
  /** Default true. */
  lowercase?: boolean;
}

export interface EncodeOptions {
  /** Put [CLS] first (it takes one of the maxLength positions). Default false. */
  cls?: boolean;
}

/** The serialized form; `vocab[id]` is the token with that id. */
export interface TokenizerJSON {
  type: 'word-level';
  version: 1;
  lowercase: boolean;
  vocab: string[];
}

// Words are runs of Unicode letters and digits; everything else separates them (so no word can
// collide with a bracketed special token).
const WORD = /[\p{L}\p{N}]+/gu;

export class Tokenizer {
  readonly lowercase: boolean;
  private readonly tokens: string[];
  private readonly ids: Map<string, number>;

  private constructor(vocab: string[], lowercase: boolean) {
    this.tokens = vocab;
    this.lowercase = lowercase;
    this.ids = new Map(vocab.map((t, i) => [t, i]));
  }

  /**
   * Keeps the vocabSize - 4 most frequent words. Ties go alphabetically (by UTF-16 code units,
   * not locale) so that the same texts always give the same ids.
   */
  static train(texts: Iterable<string>, opts: TokenizerTrainOptions): Tokenizer {
    const { vocabSize, minCount = 1, lowercase = true } = opts;
    if (!Number.isInteger(vocabSize) || vocabSize <= SPECIAL_TOKENS.length) {
      throw new UserError(`tokenizer vocabSize must be an integer above ${SPECIAL_TOKENS.length} (the special tokens), got ${vocabSize}`);
    }
    if (!Number.isInteger(minCount) || minCount < 1) throw new UserError(`tokenizer minCount must be a positive integer, got ${minCount}`);
    const counts = new Map<string, number>();
    for (const text of texts) {
      for (const w of splitWords(text, lowercase)) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    const words = [...counts]
      .filter(([, c]) => c >= minCount)
      .sort(([wa, ca], [wb, cb]) => cb - ca || (wa < wb ? -1 : wa > wb ? 1 : 0))
      .slice(0, vocabSize - SPECIAL_TOKENS.length)
      .map(([w]) => w);
    return new Tokenizer([...SPECIAL_TOKENS, ...words], lowercase);
  }

  /** Accepts the object from toJSON() or its JSON text (e.g. a model metadata value). */
  static fromJSON(json: TokenizerJSON | string): Tokenizer {
    let obj: unknown = json;
    if (typeof json === 'string') {
      try {
        obj = JSON.parse(json);
      } catch (err) {
        throw new UserError(`tokenizer JSON does not parse: ${(err as Error).message}`);
      }
    }
    const o = obj as Partial<TokenizerJSON> | null;
    if (!o || typeof o !== 'object' || o.type !== 'word-level') throw new UserError(`tokenizer JSON: expected type 'word-level'`);
    if (o.version !== 1) throw new UserError(`tokenizer JSON: unsupported version ${String(o.version)}`);
    if (typeof o.lowercase !== 'boolean') throw new UserError(`tokenizer JSON: 'lowercase' must be true or false`);
    const vocab = o.vocab;
    if (!Array.isArray(vocab) || !vocab.every((t) => typeof t === 'string')) throw new UserError(`tokenizer JSON: 'vocab' must be an array of strings`);
    if (SPECIAL_TOKENS.some((t, i) => vocab[i] !== t)) throw new UserError(`tokenizer JSON: vocab must start with ${SPECIAL_TOKENS.join(' ')}`);
    if (new Set(vocab).size !== vocab.length) throw new UserError(`tokenizer JSON: vocab has duplicate tokens`);
    return new Tokenizer([...vocab], o.lowercase);
  }

  /** The tokenizer stored in a model's metadata_props, or undefined when it has none. */
  static fromModelMetadata(metadata: Readonly<Record<string, string>>): Tokenizer | undefined {
    const value = metadata[TOKENIZER_METADATA_KEY];
    return value === undefined ? undefined : Tokenizer.fromJSON(value);
  }

  toJSON(): TokenizerJSON {
    return { type: 'word-level', version: 1, lowercase: this.lowercase, vocab: [...this.tokens] };
  }

  /** Number of ids, special tokens included. */
  get vocabSize(): number {
    return this.tokens.length;
  }

  get vocab(): readonly string[] {
    return this.tokens;
  }

  tokenId(token: string): number {
    return this.ids.get(token) ?? UNK_ID;
  }

  /** The words of `text` as this tokenizer sees them (before the vocabulary lookup). */
  words(text: string): string[] {
    return splitWords(text, this.lowercase);
  }

  /** Exactly maxLength ids: truncated at the end, padded with [PAD]=0. */
  encode(text: string, maxLength: number, opts: EncodeOptions = {}): number[] {
    const out = new BigInt64Array(maxLength);
    this.encodeInto(text, maxLength, out, 0, opts);
    return Array.from(out, Number);
  }

  /** encode() straight into a dataset column, without intermediate arrays. */
  encodeInto(text: string, maxLength: number, out: BigInt64Array, offset: number, opts: EncodeOptions = {}): void {
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new UserError(`maxLength must be a positive integer, got ${maxLength}`);
    let n = 0;
    if (opts.cls) out[offset + n++] = BigInt(CLS_ID);
    for (const w of this.wordIterator(text)) {
      if (n >= maxLength) break;
      out[offset + n++] = BigInt(this.tokenId(w));
    }
    out.fill(BigInt(PAD_ID), offset + n, offset + maxLength);
  }

  /** Lazily, so that truncating a long email does not split all of it. */
  private *wordIterator(text: string): Generator<string> {
    for (const m of text.matchAll(WORD)) yield this.lowercase ? m[0].toLowerCase() : m[0];
  }

  /** The tokens of some ids, e.g. to show what the model saw. Padding is dropped. */
  decode(ids: ArrayLike<number | bigint>): string[] {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]);
      if (id !== PAD_ID) out.push(this.tokens[id] ?? SPECIAL_TOKENS[UNK_ID]!);
    }
    return out;
  }
}

function splitWords(text: string, lowercase: boolean): string[] {
  const words = text.match(WORD) ?? [];
  return lowercase ? words.map((w) => w.toLowerCase()) : words;
}

/**
 * The body of an email: everything after the first blank line (crude, but it drops the headers,
 * whose relay hosts and dates would otherwise give the class away). Text without a blank line is
 * returned whole, since it is more likely a bare body than a header block.
 */
export function emailBody(text: string): string {
  const m = /\r?\n\r?\n/.exec(text);
  return m ? text.slice(m.index + m[0].length) : text;
}
