/**
 * Checkpoints: everything needed to continue a run exactly where it stopped. A checkpoint is a
 * folder `step-<n>` holding `tensors.bin` (named float32 tensors, concatenated) and `state.json`
 * (the index of those tensors plus the loop's scalar state). It is written to a temporary folder
 * and renamed into place, then `latest` is replaced atomically: a run killed at any moment leaves
 * either the previous checkpoint or the new one, never a torn file.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UserError } from '../errors.js';

export const CHECKPOINT_FORMAT = 'finetune-operator/checkpoint@1';

export interface CheckpointTensorIndex {
  name: string;
  offset: number;
  length: number;
}

export interface Checkpoint<State> {
  /** Loop state: step, epoch, position, optimizer step count, early-stopping counters, history. */
  state: State;
  /** Named float32 tensors: parameters, optimizer slots, best parameters. */
  tensors: Map<string, Float32Array>;
}

function writeDurably(path: string, data: string | Uint8Array): void {
  writeFileSync(path, data);
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes checkpoint `step` under `dir` and points `latest` at it; keeps the newest `keep`. */
/** Writes a checkpoint; returns its folder and the bytes written (for metrics). */
/** The folder of the checkpoint of `step` in `dir`. */
export function checkpointPath(dir: string, step: number): string {
  return join(dir, `step-${String(step).padStart(8, '0')}`);
}

export function saveCheckpoint<State>(dir: string, step: number, checkpoint: Checkpoint<State>, keep = 2): { path: string; bytes: number } {
  mkdirSync(dir, { recursive: true });
  const name = basename(checkpointPath(dir, step));
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const index: CheckpointTensorIndex[] = [];
  let offset = 0;
  for (const [tensorName, values] of checkpoint.tensors) {
    index.push({ name: tensorName, offset, length: values.length });
    offset += values.byteLength;
  }
  const blob = new Uint8Array(offset);
  for (const entry of index) {
    const values = checkpoint.tensors.get(entry.name)!;
    blob.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), entry.offset);
  }
  writeDurably(join(tmp, 'tensors.bin'), blob);
  const stateText = JSON.stringify({ format: CHECKPOINT_FORMAT, step, index, state: checkpoint.state }) + '\n';
  writeDurably(join(tmp, 'state.json'), stateText);
  const final = join(dir, name);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  writeDurably(join(dir, `latest.tmp-${process.pid}`), name + '\n');
  renameSync(join(dir, `latest.tmp-${process.pid}`), join(dir, 'latest'));
  pruneOld(dir, keep);
  return { path: final, bytes: blob.byteLength + Buffer.byteLength(stateText) };
}

function pruneOld(dir: string, keep: number): void {
  const all = readdirSync(dir).filter((f) => /^step-\d+$/.test(f)).sort();
  for (const old of all.slice(0, Math.max(0, all.length - keep))) rmSync(join(dir, old), { recursive: true, force: true });
}

/** The checkpoint `latest` points to, or undefined when the folder has none. */
export function loadLatestCheckpoint<State>(dir: string): (Checkpoint<State> & { path: string; step: number }) | undefined {
  const pointer = join(dir, 'latest');
  if (!existsSync(pointer)) return undefined;
  const name = readFileSync(pointer, 'utf8').trim();
  const path = join(dir, name);
  let meta: { format: string; step: number; index: CheckpointTensorIndex[]; state: State };
  let blob: Buffer;
  try {
    meta = JSON.parse(readFileSync(join(path, 'state.json'), 'utf8'));
    blob = readFileSync(join(path, 'tensors.bin'));
  } catch (err) {
    throw new UserError(`checkpoint ${path} is unreadable: ${(err as Error).message}`);
  }
  if (meta.format !== CHECKPOINT_FORMAT) throw new UserError(`checkpoint ${path} has format '${meta.format}', expected '${CHECKPOINT_FORMAT}'`);
  const tensors = new Map<string, Float32Array>();
  for (const entry of meta.index) {
    if (entry.offset + entry.length * 4 > blob.byteLength) throw new UserError(`checkpoint ${path}: tensors.bin is truncated at '${entry.name}'`);
    const copy = new Float32Array(entry.length);
    new Uint8Array(copy.buffer).set(blob.subarray(entry.offset, entry.offset + entry.length * 4));
    tensors.set(entry.name, copy);
  }
  return { state: meta.state, tensors, path, step: meta.step };
}
