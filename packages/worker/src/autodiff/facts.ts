/**
 * What gradient rules need to know about every value: element type, the shape seen when the model
 * ran, which dimensions change with the input sizes (batch, sequence), and the values of small
 * integer tensors that do not depend on input data (axes, steps, pads).
 *
 * The facts come from running the forward model twice with every intermediate value exposed as an
 * output (see probe.ts): ONNX Runtime infers every shape for us, for every op, and the two runs use
 * different sizes for each symbolic input dimension, so a dimension that differs between them is
 * dynamic and rules keep it symbolic (Shape/Reshape of the forward value) in the graphs they emit.
 */
import { DataType } from '../onnx/types.js';

export interface ValueFacts {
  dataType: DataType;
  /** Shape in the first probe run. */
  dims: number[];
  /** Per axis: true when the size follows the inputs' symbolic sizes. */
  dynamic: boolean[];
  /** Values of a small integer tensor computed only from constants and shapes, when they are the same in both runs. */
  ints?: number[];
}

export class ValueFactsTable {
  constructor(private readonly table: ReadonlyMap<string, ValueFacts>) {}

  has(name: string): boolean {
    return this.table.has(name);
  }

  get(name: string): ValueFacts {
    const facts = this.table.get(name);
    if (!facts) throw new Error(`internal: no shape facts for value '${name}'`);
    return facts;
  }

  rank(name: string): number {
    return this.get(name).dims.length;
  }

  dims(name: string): number[] {
    return this.get(name).dims;
  }

  dataType(name: string): DataType {
    return this.get(name).dataType;
  }

  /** True when axis `axis` is known to be exactly 1 for every input size. */
  isUnitDim(name: string, axis: number): boolean {
    const f = this.get(name);
    return f.dims[axis] === 1 && !f.dynamic[axis];
  }

  isStatic(name: string): boolean {
    return !this.get(name).dynamic.some(Boolean);
  }

  ints(name: string): number[] | undefined {
    return this.table.get(name)?.ints;
  }
}
