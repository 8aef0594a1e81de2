/** Which initializers train: exact names and glob patterns, resolved against the model. */
import picomatch from 'picomatch';
import { DataType, type Model, dataTypeName } from '../onnx/types.js';
import { UserError } from '../errors.js';

export interface TrainableSelection {
  trainable: string[];
  frozen: string[];
}

const GLOB_CHARS = /[*?[\]{}!]/;

/**
 * Resolves `patterns` (exact initializer names or globs) to float initializers. Without patterns
 * every float32 initializer is a candidate. A pattern that matches nothing is an error, as is an
 * exact name of a non-float32 initializer.
 */
export function selectTrainable(model: Model, patterns: readonly string[] | undefined): TrainableSelection {
  const inits = model.graph.initializers;
  const names = new Set(inits.map((t) => t.name));
  const isTrainableType = (t: { dataType: DataType }) => t.dataType === DataType.FLOAT;
  if (!patterns || patterns.length === 0) {
    return {
      trainable: inits.filter(isTrainableType).map((t) => t.name),
      frozen: inits.filter((t) => !isTrainableType(t)).map((t) => t.name),
    };
  }
  const chosen = new Set<string>();
  for (const pattern of patterns) {
    if (names.has(pattern)) {
      const t = inits.find((i) => i.name === pattern)!;
      if (!isTrainableType(t)) throw new UserError(`--trainable ${pattern}: initializer is ${dataTypeName(t.dataType)}; only float32 parameters can be trained`);
      chosen.add(pattern);
      continue;
    }
    if (!GLOB_CHARS.test(pattern)) throw new UserError(`--trainable ${pattern}: no initializer has this name${suggest(pattern, [...names])}`);
    const match = picomatch(pattern, { dot: true });
    const hits = inits.filter((t) => isTrainableType(t) && match(t.name));
    if (hits.length === 0) throw new UserError(`--trainable ${pattern}: the pattern matches no float32 initializer${suggest(pattern, [...names])}`);
    for (const t of hits) chosen.add(t.name);
  }
  return {
    trainable: inits.filter((t) => chosen.has(t.name)).map((t) => t.name),
    frozen: inits.filter((t) => !chosen.has(t.name)).map((t) => t.name),
  };
}

function suggest(pattern: string, names: string[]): string {
  const stem = pattern.replace(/[*?[\]{}!].*$/, '').split('.')[0] ?? '';
  const close = names.filter((n) => stem && n.startsWith(stem)).slice(0, 5);
  const shown = close.length > 0 ? close : names.slice(0, 5);
  return shown.length > 0 ? ` (initializers include: ${shown.join(', ')}${names.length > shown.length ? ', …' : ''})` : ' (the model has no initializers)';
}
