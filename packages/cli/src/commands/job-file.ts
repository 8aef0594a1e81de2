/** Reading a FineTuneJob file for the CLI: user errors are one line. */
import { readFileSync } from 'node:fs';
import { parseFineTuneJob, SpecError, type FineTuneJob } from '@finetune/api';
import { UserError } from '@finetune/worker';

export function readJobFile(file: string): FineTuneJob {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseFineTuneJob(text, file);
  } catch (err) {
    if (err instanceof SpecError) throw new UserError(err.message);
    throw err;
  }
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got '${value}'`);
  return n;
}
