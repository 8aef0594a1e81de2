/**
 * Runs the forward model in onnxruntime-node with every intermediate value exposed, twice, with
 * different sizes for symbolic input dimensions, and records each value's type and shape.
 */
import ort from 'onnxruntime-node';
import { DataType, ORT_ELEMENT_TYPES, type Model, type ValueInfo, dataTypeName } from '../onnx/types.js';
import { modelToBytes } from '../onnx/load.js';
import { UserError } from '../errors.js';
import type { ValueFacts } from './facts.js';

/** Largest integer tensor whose values are recorded (axes, shapes, pads are tiny). */
const MAX_RECORDED_INTS = 64;

export interface ProbeOptions {
  /** Sizes for symbolic input dimensions by name (e.g. { batch: 8 }); others get small distinct sizes. */
  dims?: Record<string, number>;
}

/** Graph inputs that are real inputs (not initializers listed as inputs, as old exporters do). */
export function realInputs(model: Model): ValueInfo[] {
  const inits = new Set(model.graph.initializers.map((t) => t.name));
  return model.graph.inputs.filter((i) => !inits.has(i.name));
}

export async function probeValueFacts(model: Model, options: ProbeOptions = {}): Promise<Map<string, ValueFacts>> {
  const inputs = realInputs(model);
  const symbols = symbolicDims(inputs);
  const pinned = options.dims ?? {};
  for (const name of Object.keys(pinned)) {
    if (!symbols.includes(name)) {
      throw new UserError(`--dim ${name}: the model's inputs have no symbolic dimension '${name}' (they have: ${symbols.join(', ') || 'none'})`);
    }
  }
  const sizesA = new Map<string, number>();
  const sizesB = new Map<string, number>();
  // The two runs differ by 7 per symbolic size, so a size still differs after strided ops
  // (a difference of 1 can vanish through a stride-2 convolution and look fixed).
  symbols.forEach((s, i) => {
    sizesA.set(s, pinned[s] ?? 2 + i);
    sizesB.set(s, pinned[s] ?? 9 + i);
  });

  const exposed = exposeAllValues(model);
  const session = await createSession(exposed);
  try {
    const runA = await runProbe(session, inputs, sizesA);
    const runB = await runProbe(session, inputs, sizesB);
    // The fed inputs are values too (rules ask about token ids, masks, ...).
    for (const input of inputs) {
      runA.set(input.name, runA.feeds[input.name]!);
      runB.set(input.name, runB.feeds[input.name]!);
    }
    return combine(model, runA, runB);
  } finally {
    await session.release();
  }
}

/** Symbolic (or unknown) input dimensions, named; unknown ones get a positional name. */
function symbolicDims(inputs: ValueInfo[]): string[] {
  const names: string[] = [];
  for (const input of inputs) {
    (input.shape ?? []).forEach((d, axis) => {
      const name = typeof d === 'string' ? d : d === null ? `${input.name}:${axis}` : undefined;
      if (name !== undefined && !names.includes(name)) names.push(name);
    });
  }
  return names;
}

function exposeAllValues(model: Model): Model {
  const seen = new Set(model.graph.outputs.map((o) => o.name));
  const outputs = [...model.graph.outputs];
  for (const node of model.graph.nodes) {
    for (const out of node.outputs) {
      if (out && !seen.has(out)) {
        seen.add(out);
        outputs.push({ name: out, elemType: DataType.UNDEFINED });
      }
    }
  }
  return { ...model, graph: { ...model.graph, outputs } };
}

async function createSession(model: Model): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(modelToBytes(model), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  } catch (err) {
    throw new UserError(`onnxruntime cannot load the model: ${firstLine(err)}`);
  }
}

type ProbeRun = Map<string, ort.Tensor> & { feeds: Record<string, ort.Tensor> };

async function runProbe(session: ort.InferenceSession, inputs: ValueInfo[], sizes: Map<string, number>): Promise<ProbeRun> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of inputs) {
    const dims = (input.shape ?? []).map((d, axis) => (typeof d === 'number' ? d : sizes.get(typeof d === 'string' ? d : `${input.name}:${axis}`)!));
    feeds[input.name] = zeros(input, dims);
  }
  try {
    const out = await session.run(feeds);
    return Object.assign(new Map(Object.entries(out) as [string, ort.Tensor][]), { feeds });
  } catch (err) {
    const shown = [...sizes].map(([k, v]) => `${k}=${v}`).join(', ');
    throw new UserError(
      `the forward model failed on zero-filled inputs with symbolic sizes ${shown || '(none)'}: ${firstLine(err)}; ` +
        `pass real sizes with --dim NAME=SIZE`,
    );
  }
}

function zeros(input: ValueInfo, dims: number[]): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  switch (input.elemType) {
    case DataType.FLOAT:
      return new ort.Tensor('float32', new Float32Array(n), dims);
    case DataType.DOUBLE:
      return new ort.Tensor('float64', new Float64Array(n), dims);
    case DataType.INT64:
      return new ort.Tensor('int64', new BigInt64Array(n), dims);
    case DataType.INT32:
      return new ort.Tensor('int32', new Int32Array(n), dims);
    case DataType.BOOL:
      return new ort.Tensor('bool', new Uint8Array(n), dims);
    case DataType.UINT8:
      return new ort.Tensor('uint8', new Uint8Array(n), dims);
    default:
      throw new UserError(`input '${input.name}' has type ${dataTypeName(input.elemType)}, which the trainer cannot feed`);
  }
}

function combine(model: Model, runA: ProbeRun, runB: ProbeRun): Map<string, ValueFacts> {
  const facts = new Map<string, ValueFacts>();
  const dataIndependent = dataIndependentValues(model);
  for (const t of model.graph.initializers) {
    facts.set(t.name, {
      dataType: t.dataType,
      dims: [...t.dims],
      dynamic: t.dims.map(() => false),
      ...(smallInts(t.dataType, t.dims, t.values) ? { ints: Array.from(t.values as ArrayLike<number | bigint>, Number) } : {}),
    });
  }
  for (const [name, a] of runA) {
    const b = runB.get(name)!;
    const dataType = ORT_ELEMENT_TYPES[a.type] ?? DataType.UNDEFINED;
    const dims = a.dims.map(Number);
    const dynamic = dims.map((d, i) => dims.length !== b.dims.length || d !== Number(b.dims[i]));
    const entry: ValueFacts = { dataType, dims, dynamic };
    if (dataIndependent.has(name) && smallInts(dataType, dims, a.data) && !dynamic.some(Boolean)) {
      const va = Array.from(a.data as ArrayLike<number | bigint>, Number);
      const vb = Array.from(b.data as ArrayLike<number | bigint>, Number);
      if (va.every((v, i) => v === vb[i])) entry.ints = va;
    }
    facts.set(name, entry);
  }
  return facts;
}

function smallInts(dataType: DataType, dims: number[], values: unknown): boolean {
  const n = dims.reduce((a, b) => a * b, 1);
  return (dataType === DataType.INT64 || dataType === DataType.INT32 || dataType === DataType.BOOL) && n <= MAX_RECORDED_INTS && !Array.isArray(values);
}

/** Values computed only from initializers, Constant nodes and the shapes (not the data) of inputs. */
function dataIndependentValues(model: Model): Set<string> {
  const known = new Set(model.graph.initializers.map((t) => t.name));
  known.add('');
  for (const node of model.graph.nodes) {
    const shapeOnly = node.opType === 'Shape' || node.opType === 'Size';
    if (shapeOnly || node.inputs.every((i) => known.has(i))) for (const o of node.outputs) known.add(o);
  }
  return known;
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!.trim();
}
