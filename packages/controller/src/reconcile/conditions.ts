/**
 * metav1.Condition bookkeeping: setting a condition to the status it already has keeps its
 * lastTransitionTime (conditions say when something changed, not when it was last checked).
 */
import type { Condition } from '@finetune/api';

export const CONDITION = {
  created: 'Created',
  running: 'Running',
  restarting: 'Restarting',
  suspended: 'Suspended',
  succeeded: 'Succeeded',
  failed: 'Failed',
} as const;
export type ConditionType = (typeof CONDITION)[keyof typeof CONDITION];

export function setCondition(
  conditions: Condition[],
  type: ConditionType,
  status: boolean,
  reason: string,
  message: string,
  now: Date,
  generation?: number,
): Condition[] {
  const value = status ? 'True' : 'False';
  const existing = conditions.find((c) => c.type === type);
  const next: Condition = {
    type,
    status: value,
    reason,
    message,
    lastTransitionTime: existing && existing.status === value ? existing.lastTransitionTime : now.toISOString(),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  return [...conditions.filter((c) => c.type !== type), next];
}

export function conditionIs(conditions: readonly Condition[] | undefined, type: ConditionType): boolean {
  return conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
}
