/**
 * What the reconciler needs to know about one worker pod, read from its core/v1 status: phase,
 * readiness, exit code, and why it is stuck when it is Pending.
 */
import type { KubeObject } from '../kube/rest.js';
import { LABELS } from '../plan/objects.js';

/** Pod annotation: hash of the pod spec the controller planned (a changed spec restarts the gang). */
export const SPEC_HASH_ANNOTATION = 'finetune.dev/spec-hash';

export interface KubePod extends KubeObject {
  spec?: { nodeName?: string };
  status?: {
    phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: {
      name: string;
      ready?: boolean;
      state?: {
        waiting?: { reason?: string; message?: string };
        running?: { startedAt?: string };
        terminated?: { exitCode: number; reason?: string; message?: string };
      };
    }[];
  };
}

export interface PodView {
  name: string;
  uid: string;
  rank: number;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  ready: boolean;
  terminating: boolean;
  createdAt: Date;
  ip?: string;
  specHash?: string;
  /** Set when the container has terminated. */
  exitCode?: number;
  /** Why the pod is not running yet, e.g. `Unschedulable: 0/2 nodes are available: …` or `ImagePullBackOff: …`. */
  pendingReason?: string;
  /** Why it stopped: reason and message of the terminated container. */
  terminationMessage?: string;
  /**
   * Set when Kubernetes took the pod away (condition DisruptionTarget: an eviction, a preemption,
   * a taint or node-pressure eviction): `reason: message`.
   */
  disruption?: string;
}

export function podView(pod: KubePod): PodView | undefined {
  // Digits only: Number('') is 0, Number(' 1') is 1, Number('1e1') is 10.
  const label = pod.metadata.labels?.[LABELS.rank];
  if (label === undefined || !/^\d+$/.test(label)) return undefined;
  const rank = Number(label);
  const container = pod.status?.containerStatuses?.[0];
  const terminated = container?.state?.terminated;
  const waiting = container?.state?.waiting;
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  const phase = pod.status?.phase ?? 'Pending';
  const view: PodView = {
    name: pod.metadata.name,
    uid: pod.metadata.uid ?? '',
    rank,
    phase,
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    terminating: Boolean(pod.metadata.deletionTimestamp),
    createdAt: new Date(pod.metadata.creationTimestamp ?? 0),
  };
  if (pod.status?.podIP) view.ip = pod.status.podIP;
  const disruption = pod.status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
  if (disruption) view.disruption = [disruption.reason ?? 'Disrupted', disruption.message?.trim()].filter(Boolean).join(': ');
  const hash = pod.metadata.annotations?.[SPEC_HASH_ANNOTATION];
  if (hash) view.specHash = hash;
  if (terminated) {
    view.exitCode = terminated.exitCode;
    view.terminationMessage = [terminated.reason, condense(terminated.message ?? '')].filter(Boolean).join(': ');
  } else if (phase === 'Failed') {
    // Evicted, or failed before its container ran: the pod's own reason is all there is.
    const s = pod.status as { reason?: string; message?: string } | undefined;
    const text = [s?.reason, s?.message?.trim()].filter(Boolean).join(': ');
    if (text) view.terminationMessage = text;
  }
  if (phase === 'Pending') {
    if (scheduled?.status === 'False') view.pendingReason = `${scheduled.reason ?? 'Unschedulable'}${scheduled.message ? `: ${scheduled.message}` : ''}`;
    else if (waiting?.reason) view.pendingReason = `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
  }
  return view;
}

/** Most lines a termination message keeps in a condition (a log tail can have 80). */
const MESSAGE_LINES = 5;
/** Most characters it keeps. */
const MESSAGE_CHARS = 1000;

/**
 * A termination message fit for a condition: one line. A worker writes one line; a crash leaves
 * its log's last lines (FallbackToLogsOnError), of which the last few say the most.
 */
export function condense(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter(Boolean);
  const text = lines.slice(-MESSAGE_LINES).join(' | ');
  return text.length > MESSAGE_CHARS ? `…${text.slice(-MESSAGE_CHARS)}` : text;
}
