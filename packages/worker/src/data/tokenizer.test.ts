import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLS_ID, emailBody, PAD_ID, SPECIAL_TOKENS, Tokenizer, TOKENIZER_METADATA_KEY, UNK_ID } from './tokenizer.js';
import { UserError } from '../errors.js';

const texts = ['The cat sat.', 'the dog sat!', 'A cat, a DOG; the end', 'zebra'];

test('training keeps the most frequent words, ties broken alphabetically, after the special tokens', () => {
  // Counts: the 3, cat 2, sat 2, dog 2, a 2, end 1, zebra 1.
  const tok = Tokenizer.train(texts, { vocabSize: 9 });
  assert.deepEqual(tok.vocab, ['[PAD]', '[UNK]', '[MASK]', '[CLS]', 'the', 'a', 'cat', 'dog', 'sat']);
  assert.equal(tok.vocabSize, 9);
  assert.deepEqual(SPECIAL_TOKENS, ['[PAD]', '[UNK]', '[MASK]', '[CLS]']);
  // The same texts in another order give the same ids.
  assert.deepEqual(Tokenizer.train([...texts].reverse(), { vocabSize: 9 }).vocab, tok.vocab);
  assert.deepEqual(Tokenizer.train(texts, { vocabSize: 100 }).vocab.slice(9), ['end', 'zebra']);
  assert.deepEqual(Tokenizer.train(texts, { vocabSize: 100, minCount: 2 }).vocabSize, 9);
});

test('words are letter-and-digit runs, lowercased unless told otherwise', () => {
  const tok = Tokenizer.train(['Café-au-lait x2, 3.14'], { vocabSize: 50 });
  assert.deepEqual(tok.words('Café-au-lait x2, 3.14'), ['café', 'au', 'lait', 'x2', '3', '14']);
  const cased = Tokenizer.train(['Dog dog DOG dog'], { vocabSize: 50, lowercase: false });
  assert.deepEqual(cased.vocab.slice(4), ['dog', 'DOG', 'Dog']);
});

test('encode pads with [PAD], truncates, maps unknown words to [UNK], and can lead with [CLS]', () => {
  const tok = Tokenizer.train(texts, { vocabSize: 9 });
  const id = (w: string) => tok.vocab.indexOf(w);
  assert.deepEqual(tok.encode('The cat', 5), [id('the'), id('cat'), PAD_ID, PAD_ID, PAD_ID]);
  assert.deepEqual(tok.encode('the unicorn sat the end', 4), [id('the'), UNK_ID, id('sat'), id('the')]);
  assert.deepEqual(tok.encode('cat dog', 3, { cls: true }), [CLS_ID, id('cat'), id('dog')]);
  assert.deepEqual(tok.encode('', 2), [0, 0]);
  assert.deepEqual(tok.decode(tok.encode('the unicorn', 4)), ['the', '[UNK]']);
  const out = new BigInt64Array(6).fill(-1n);
  tok.encodeInto('dog', 3, out, 3);
  assert.deepEqual(Array.from(out), [-1n, -1n, -1n, BigInt(id('dog')), 0n, 0n]);
  assert.throws(() => tok.encode('x', 0), UserError);
});

test('the JSON round trip (as model metadata) gives a tokenizer that encodes identically', () => {
  const tok = Tokenizer.train(texts, { vocabSize: 8, lowercase: false });
  const metadata = { [TOKENIZER_METADATA_KEY]: JSON.stringify(tok) };
  assert.equal(TOKENIZER_METADATA_KEY, 'finetune.tokenizer');
  const back = Tokenizer.fromModelMetadata(metadata)!;
  assert.deepEqual(back.toJSON(), tok.toJSON());
  assert.equal(back.lowercase, false);
  assert.deepEqual(back.encode('The cat sat on the DOG', 8), tok.encode('The cat sat on the DOG', 8));
  assert.equal(Tokenizer.fromModelMetadata({}), undefined);
});

test('a damaged tokenizer JSON is a UserError that says what is wrong', () => {
  const good = Tokenizer.train(texts, { vocabSize: 8 }).toJSON();
  assert.throws(() => Tokenizer.fromJSON('{not json'), /does not parse/);
  assert.throws(() => Tokenizer.fromJSON({ ...good, type: 'bpe' as 'word-level' }), /word-level/);
  assert.throws(() => Tokenizer.fromJSON({ ...good, vocab: ['the', ...good.vocab] }), /must start with \[PAD\]/);
  assert.throws(() => Tokenizer.fromJSON({ ...good, vocab: [...good.vocab, 'the'] }), /duplicate/);
  assert.throws(() => Tokenizer.train(texts, { vocabSize: 4 }), UserError);
});

test('emailBody drops the header block', () => {
  assert.equal(emailBody('From: a@b\nSubject: hi\n\nHello\n\nBye'), 'Hello\n\nBye');
  assert.equal(emailBody('From: a@b\r\nSubject: hi\r\n\r\nHello'), 'Hello');
  assert.equal(emailBody('just a body'), 'just a body');
});
