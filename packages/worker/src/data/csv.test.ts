import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCsv } from './csv.js';
import { UserError } from '../errors.js';

const fields = (text: string, delimiter?: string) => parseCsv(text, 't.csv', delimiter).map((r) => r.fields);

test('plain records, LF or CRLF, a BOM, blank lines and a missing final newline', () => {
  assert.deepEqual(fields('\uFEFFa,b\r\n1,2\r\n\r\n3,4'), [['a', 'b'], ['1', '2'], ['3', '4']]);
  assert.deepEqual(fields('a,,c,\n'), [['a', '', 'c', '']]);
  assert.deepEqual(fields('a\tb c\n', '\t'), [['a', 'b c']]);
  assert.deepEqual(fields(''), []);
});

test('quoted fields: delimiters, "" escapes and line breaks inside, with the starting line kept', () => {
  const records = parseCsv('text,label\n"hello, ""world""",1\n"two\nlines\r\nhere",0\nlast,1\n', 't.csv');
  assert.deepEqual(records, [
    { fields: ['text', 'label'], line: 1 },
    { fields: ['hello, "world"', '1'], line: 2 },
    { fields: ['two\nlines\r\nhere', '0'], line: 3 },
    { fields: ['last', '1'], line: 6 },
  ]);
  // A quote inside an unquoted field is taken literally.
  assert.deepEqual(fields('a 5" screen,1'), [['a 5" screen', '1']]);
  assert.deepEqual(fields('"",x'), [['', 'x']]);
});

test('malformed quoting is a UserError naming the file and line', () => {
  assert.throws(() => parseCsv('a,b\n1,"open\n2,3\n', 'data/x.csv'), (e: Error) => e instanceof UserError && e.message === 'data/x.csv line 2: quoted field is never closed');
  assert.throws(() => parseCsv('a,b\n"x"y,1\n', 'data/x.csv'), /^UserError: data\/x\.csv line 2: unexpected "y" after a closing quote/);
  assert.throws(() => parseCsv('a', 'x.csv', '"'), UserError);
});
