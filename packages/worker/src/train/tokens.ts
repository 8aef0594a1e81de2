/** Token counting for the tokens_total metric: ids other than [PAD] in a text model's input. */
import type { Batch } from '../data/dataset.js';
import { PAD_ID } from '../data/tokenizer.js';

const PAD = BigInt(PAD_ID);

export function nonPadTokens(batch: Batch, inputName: string): number {
  const ids = batch.feeds[inputName]?.data;
  if (!(ids instanceof BigInt64Array)) return 0;
  let n = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] !== PAD) n++;
  return n;
}
