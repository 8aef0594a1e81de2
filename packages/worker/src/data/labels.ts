/**
 * Turns the labels a user wrote (class names or integer ids) into class ids, with the location of
 * the first bad one in the error. Shared by every file format so they all follow the same rules.
 */
import { UserError } from '../errors.js';

export type RawLabel = string | number;

export interface ClassLabelOptions {
  /** Class names, index = id. Names map to their index; integers must be valid indices. */
  classes?: string[];
  /** Integer ids must be below this (and at most this many names are allowed). */
  numClasses?: number;
}

export interface ResolvedLabels {
  ids: BigInt64Array;
  classes?: string[];
}

function listClasses(classes: readonly string[]): string {
  const shown = classes.slice(0, 20).map((c) => `'${c}'`);
  return shown.join(', ') + (classes.length > 20 ? `, ... (${classes.length} in all)` : '');
}

/**
 * Without `classes`: all-integer labels are ids as they stand; all-name labels get ids in sorted
 * (UTF-16 code unit) order of the distinct names, so the same file always gives the same ids.
 * Loading a validation file separately? Pass the training set's classes so the ids agree.
 */
export function resolveClassLabels(raw: readonly RawLabel[], where: (i: number) => string, opts: ClassLabelOptions = {}): ResolvedLabels {
  const { classes, numClasses } = opts;
  if (numClasses !== undefined && (!Number.isInteger(numClasses) || numClasses < 1)) {
    throw new UserError(`numClasses must be a positive integer, got ${numClasses}`);
  }
  if (classes) {
    if (classes.length === 0) throw new UserError('classes must not be empty');
    if (new Set(classes).size !== classes.length) throw new UserError(`classes has duplicates: ${listClasses(classes)}`);
    if (numClasses !== undefined && classes.length !== numClasses) {
      throw new UserError(`${classes.length} classes are named but numClasses is ${numClasses}`);
    }
  }
  const limit = classes?.length ?? numClasses;
  const ids = new BigInt64Array(raw.length);
  const checkId = (i: number, v: number): void => {
    if (!Number.isInteger(v) || v < 0) throw new UserError(`${where(i)}: label ${v} is not a class id (a non-negative integer) or a class name`);
    if (limit !== undefined && v >= limit) {
      throw new UserError(`${where(i)}: label ${v} is outside the ${limit} classes (ids 0..${limit - 1})`);
    }
    ids[i] = BigInt(v);
  };

  if (classes) {
    const index = new Map(classes.map((c, i) => [c, i]));
    raw.forEach((v, i) => {
      if (typeof v === 'number') return checkId(i, v);
      const id = index.get(v);
      if (id === undefined) throw new UserError(`${where(i)}: label '${v}' is not one of the classes ${listClasses(classes)}`);
      ids[i] = BigInt(id);
    });
    return { ids, classes: [...classes] };
  }

  const kind = typeof raw[0];
  raw.forEach((v, i) => {
    if (typeof v !== kind) {
      throw new UserError(
        `${where(i)}: label ${JSON.stringify(v)} mixes class names and integer ids (the first label is ${JSON.stringify(raw[0])}); ` +
          'give the class names to use both',
      );
    }
  });
  if (kind === 'number') {
    raw.forEach((v, i) => checkId(i, v as number));
    return { ids };
  }
  const names = [...new Set(raw as string[])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (numClasses !== undefined && names.length > numClasses) {
    throw new UserError(`the labels name ${names.length} classes (${listClasses(names)}) but numClasses is ${numClasses}`);
  }
  const index = new Map(names.map((c, i) => [c, i]));
  raw.forEach((v, i) => (ids[i] = BigInt(index.get(v as string)!)));
  return { ids, classes: names };
}
