/**
 * A tiny graph-building API for gradient rules: every helper appends standard `ai.onnx` nodes and
 * returns the name of the value it produced. Names are unique within the graph being built.
 */
import { DataType, type AttributeValue, type Node, type TensorData } from '../onnx/types.js';

export const attr = {
  int: (value: number): AttributeValue => ({ type: 'int', value }),
  float: (value: number): AttributeValue => ({ type: 'float', value }),
  ints: (value: number[]): AttributeValue => ({ type: 'ints', value }),
  floats: (value: number[]): AttributeValue => ({ type: 'floats', value }),
  string: (value: string): AttributeValue => ({ type: 'string', value }),
  tensor: (value: TensorData): AttributeValue => ({ type: 'tensor', value }),
};

export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly constants: TensorData[] = [];
  private readonly taken: Set<string>;
  private readonly constantCache = new Map<string, string>();
  private counter = 0;

  /** `taken` holds every name already used in the graph, so new names never collide. */
  constructor(taken: Iterable<string>, private readonly prefix = 'grad') {
    this.taken = new Set(taken);
  }

  /** A fresh value name derived from `hint`. */
  fresh(hint: string): string {
    const base = `${this.prefix}/${hint}`;
    let name = base;
    while (this.taken.has(name)) name = `${base}_${++this.counter}`;
    this.taken.add(name);
    return name;
  }

  /** Appends a node with `outputs` fresh outputs and returns their names. */
  opN(opType: string, inputs: string[], outputs: number, attributes: Record<string, AttributeValue> = {}, hint = opType): string[] {
    const names = Array.from({ length: outputs }, (_, i) => this.fresh(outputs === 1 ? hint : `${hint}_${i}`));
    this.nodes.push({ name: this.fresh(`${hint}_node`), opType, domain: '', inputs, outputs: names, attributes });
    return names;
  }

  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, hint = opType): string {
    return this.opN(opType, inputs, 1, attributes, hint)[0]!;
  }

  /** Adds a node exactly as given (used to re-emit forward nodes). */
  push(node: Node): void {
    this.nodes.push(node);
  }

  private constant(key: string, make: (name: string) => TensorData): string {
    const cached = this.constantCache.get(key);
    if (cached) return cached;
    const name = this.fresh('const');
    this.constants.push(make(name));
    this.constantCache.set(key, name);
    return name;
  }

  /** A float32 constant; `dims` defaults to a scalar. */
  f32(values: number | number[], dims?: number[]): string {
    const list = typeof values === 'number' ? [values] : values;
    const shape = dims ?? (typeof values === 'number' ? [] : [list.length]);
    return this.constant(`f32:${shape.join('x')}:${list.join(',')}`, (name) => ({
      name,
      dataType: DataType.FLOAT,
      dims: shape,
      values: Float32Array.from(list),
    }));
  }

  /** A 1-D int64 constant (axes, shapes, pads), or a scalar when `scalar` is set. */
  i64(values: number[], scalar = false): string {
    const dims = scalar ? [] : [values.length];
    return this.constant(`i64:${dims.join('x')}:${values.join(',')}`, (name) => ({
      name,
      dataType: DataType.INT64,
      dims,
      values: BigInt64Array.from(values.map(BigInt)),
    }));
  }

  // --- Small compositions used by many rules ---------------------------------------------------

  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op('Div', [a, b]);
  }
  neg(a: string): string {
    return this.op('Neg', [a]);
  }
  shape(x: string): string {
    return this.op('Shape', [x]);
  }
  reshape(x: string, shape: string): string {
    return this.op('Reshape', [x, shape]);
  }
  /** Reshape `x` to the (runtime) shape of `like`. */
  reshapeLike(x: string, like: string): string {
    return this.reshape(x, this.shape(like));
  }
  expandLike(x: string, like: string): string {
    return this.op('Expand', [x, this.shape(like)]);
  }
  transpose(x: string, perm: number[]): string {
    return this.op('Transpose', [x], { perm: attr.ints(perm) });
  }
  unsqueeze(x: string, axes: number[]): string {
    return this.op('Unsqueeze', [x, this.i64(axes)]);
  }
  squeeze(x: string, axes: number[]): string {
    return this.op('Squeeze', [x, this.i64(axes)]);
  }
  /** ReduceSum (opset 13 form: axes as an input). */
  reduceSum(x: string, axes: number[], keepdims: boolean): string {
    if (axes.length === 0) return x;
    return this.op('ReduceSum', [x, this.i64(axes)], { keepdims: attr.int(keepdims ? 1 : 0) });
  }
  /** Zeros with the runtime shape of `like`, as float32. */
  zerosLike(like: string): string {
    return this.op('ConstantOfShape', [this.shape(like)], {
      value: attr.tensor({ name: 'value', dataType: DataType.FLOAT, dims: [1], values: new Float32Array([0]) }),
    });
  }
  /** Element count of `x` as a float32 scalar, computed at run time. */
  sizeAsFloat(x: string): string {
    return this.op('Cast', [this.op('Size', [x])], { to: attr.int(DataType.FLOAT) });
  }
  cast(x: string, to: DataType): string {
    return this.op('Cast', [x], { to: attr.int(to) });
  }
  where(cond: string, a: string, b: string): string {
    return this.op('Where', [cond, a, b]);
  }
  /** A single dimension of `x` at run time, as a 1-element int64 tensor. */
  dim(x: string, axis: number): string {
    return this.op('Gather', [this.shape(x), this.i64([axis])], { axis: attr.int(0) });
  }
  concat(xs: string[], axis: number): string {
    if (xs.length === 1) return xs[0]!;
    return this.op('Concat', xs, { axis: attr.int(axis) });
  }
}
