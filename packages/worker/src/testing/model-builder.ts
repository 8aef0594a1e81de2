/**
 * Builds small ONNX models in code, for tests and examples: declare inputs, initializers and
 * nodes, get a Model. Values are float32 unless stated.
 */
import { DataType, type AttributeValue, type Dim, type Model, type Node, type TensorData, type ValueInfo } from '../onnx/types.js';
import { attr } from '../autodiff/builder.js';

export type AttrInput = AttributeValue | number | number[] | string;

/** Integers become int attributes, arrays of integers ints; use attr.float/attr.floats for floats. */
function toAttr(v: AttrInput): AttributeValue {
  if (typeof v === 'number') return attr.int(v);
  if (typeof v === 'string') return attr.string(v);
  if (Array.isArray(v)) return attr.ints(v);
  return v;
}

export class ModelBuilder {
  private readonly nodes: Node[] = [];
  private readonly inits: TensorData[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private n = 0;

  constructor(private readonly opset = 17) {}

  input(name: string, shape: Dim[], elemType = DataType.FLOAT): string {
    this.inputs.push({ name, elemType, shape });
    return name;
  }

  /** A float32 initializer. */
  param(name: string, dims: number[], values: ArrayLike<number>): string {
    this.inits.push({ name, dataType: DataType.FLOAT, dims, values: Float32Array.from(values) });
    return name;
  }

  int64(name: string, dims: number[], values: number[]): string {
    this.inits.push({ name, dataType: DataType.INT64, dims, values: BigInt64Array.from(values.map(BigInt)) });
    return name;
  }

  bool(name: string, dims: number[], values: ArrayLike<number>): string {
    this.inits.push({ name, dataType: DataType.BOOL, dims, values: Uint8Array.from(values) });
    return name;
  }

  /** Adds a node and returns its outputs. */
  nodeN(opType: string, inputs: string[], outputs: number, attributes: Record<string, AttrInput> = {}): string[] {
    const id = this.n++;
    const names = Array.from({ length: outputs }, (_, i) => `${opType.toLowerCase()}${id}_${i}`);
    this.nodes.push({
      name: `${opType}_${id}`,
      opType,
      domain: '',
      inputs,
      outputs: names,
      attributes: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, toAttr(v)])),
    });
    return names;
  }

  node(opType: string, inputs: string[], attributes: Record<string, AttrInput> = {}): string {
    return this.nodeN(opType, inputs, 1, attributes)[0]!;
  }

  output(name: string, elemType = DataType.FLOAT): this {
    this.outputs.push({ name, elemType });
    return this;
  }

  build(): Model {
    return {
      irVersion: 8,
      opsetImports: [{ domain: '', version: this.opset }],
      producerName: 'finetune-operator tests',
      producerVersion: '',
      domain: '',
      modelVersion: 1,
      docString: '',
      metadata: {},
      graph: { name: 'test', nodes: this.nodes, inputs: this.inputs, outputs: this.outputs, initializers: this.inits, valueInfo: [] },
      opaque: {},
    };
  }
}

/** The data layer's seeded generator (mulberry32), so test data is reproducible. */
export { mulberry32 as rng } from '../data/random.js';

export function randomValues(random: () => number, count: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = lo + (hi - lo) * random();
  return out;
}
