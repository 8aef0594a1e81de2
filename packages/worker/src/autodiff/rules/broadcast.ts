/** Undoing numpy-style broadcasting: sum a gradient back to the shape of the input it flows to. */
import type { ValueFacts } from '../facts.js';
import type { GradContext } from '../rule.js';

/** The static view of a shape: sizes seen in the probe, and which axes vary with the inputs. */
export type ShapeView = Pick<ValueFacts, 'dims' | 'dynamic'>;

function isUnit(view: ShapeView, axis: number): boolean {
  return view.dims[axis] === 1 && !view.dynamic[axis];
}

/**
 * Sums `grad` down to the shape of `target`: over the leading axes `target` lacks, and over axes
 * where `target` has a fixed size of 1 but the gradient does not. `gradShape` is the name of a
 * value shaped like the gradient (usually the op's output) or an explicit view. Decisions are
 * static (from the probe facts); sizes stay symbolic.
 */
export function sumToShape(ctx: GradContext, grad: string, gradShape: string | ShapeView, target: string): string {
  const { b, facts } = ctx;
  const g = typeof gradShape === 'string' ? facts.get(gradShape) : gradShape;
  const t = facts.get(target);
  const lead = g.dims.length - t.dims.length;
  if (lead < 0) ctx.fail(`internal: gradient of rank ${g.dims.length} cannot flow to '${target}' of rank ${t.dims.length}`);
  const axes: number[] = [];
  for (let i = 0; i < lead; i++) axes.push(i);
  for (let i = 0; i < t.dims.length; i++) {
    if (isUnit(t, i) && !isUnit(g, lead + i)) axes.push(lead + i);
  }
  if (axes.length === 0) return grad;
  const summed = b.reduceSum(grad, axes, true);
  return lead > 0 ? b.squeeze(summed, axes.slice(0, lead)) : summed;
}

/** The broadcast of two shape views (numpy rules), for gradients that have no forward value of their own. */
export function broadcastViews(a: ShapeView, b: ShapeView): ShapeView {
  const rank = Math.max(a.dims.length, b.dims.length);
  const dims: number[] = [];
  const dynamic: boolean[] = [];
  for (let i = 0; i < rank; i++) {
    const ai = i - (rank - a.dims.length);
    const bi = i - (rank - b.dims.length);
    const ad = ai >= 0 ? a.dims[ai]! : 1;
    const bd = bi >= 0 ? b.dims[bi]! : 1;
    const aUnit = ai < 0 || isUnit(a, ai);
    dims.push(aUnit ? bd : ad);
    dynamic.push((ai >= 0 && a.dynamic[ai]!) || (bi >= 0 && b.dynamic[bi]!));
  }
  return { dims, dynamic };
}
