/**
 * A small RFC 4180 CSV reader: quoted fields with "" escapes and line breaks inside quotes, LF or
 * CRLF records, an optional BOM. That is all a dataset file needs, so no dependency for it.
 * Leniency: a quote inside an unquoted field is kept as a literal character (5" screen).
 */
import { UserError } from '../errors.js';

export interface CsvRecord {
  fields: string[];
  /** 1-based line on which the record starts (records may span lines). */
  line: number;
}

/**
 * Every record of `text`, blank lines skipped. `source` names the file in errors. Records are not
 * required to have equal lengths here; the caller knows what the header promised.
 */
export function parseCsv(text: string, source: string, delimiter = ','): CsvRecord[] {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new UserError(`CSV delimiter must be one character other than a quote or line break, got ${JSON.stringify(delimiter)}`);
  }
  const records: CsvRecord[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const n = text.length;

  while (i < n) {
    const start = line;
    const fields: string[] = [];
    // One record: fields until an unquoted line break or the end of the text.
    for (;;) {
      let value = '';
      if (text[i] === '"') {
        const quoteLine = line;
        i++;
        for (;;) {
          if (i >= n) throw new UserError(`${source} line ${quoteLine}: quoted field is never closed`);
          const ch = text[i]!;
          if (ch === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (ch === '\n') line++;
          value += ch;
          i++;
        }
        const next = text[i];
        if (i < n && next !== delimiter && next !== '\n' && next !== '\r') {
          throw new UserError(`${source} line ${line}: unexpected ${JSON.stringify(next)} after a closing quote (write "" for a quote inside a quoted field)`);
        }
      } else {
        const from = i;
        while (i < n && text[i] !== delimiter && text[i] !== '\n' && text[i] !== '\r') i++;
        value = text.slice(from, i);
      }
      fields.push(value);
      if (i < n && text[i] === delimiter) {
        i++;
        continue;
      }
      break;
    }
    // End of record: consume one LF or CRLF (a lone CR counts too).
    if (text[i] === '\r') i++;
    if (text[i] === '\n') i++;
    line++;
    const blank = fields.length === 1 && fields[0] === '';
    if (!blank) records.push({ fields, line: start });
  }
  return records;
}
