/**
 * SIGTERM (Kubernetes stopping a pod, `ftjob run` stopping its workers) and SIGINT (Ctrl-C) as a
 * graceful stop: the first aborts `signal`, so training stops before its next step after rank 0
 * has written a checkpoint; the same signal again exits at once. One of each counts once: a
 * local run's workers get both from a single Ctrl-C (the terminal's SIGINT, the runner's SIGTERM).
 */
import { constants } from 'node:os';

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

export interface GracefulStop {
  /** Aborted by the first signal; its reason is the signal's name. */
  readonly signal: AbortSignal;
  /** Puts the default signal handling back. */
  dispose(): void;
}

/** The exit code of a process ended by `signal` (128 + its number), as shells report it. */
export function exitCodeOf(signal: string): number {
  return 128 + (constants.signals[signal as NodeJS.Signals] ?? constants.signals.SIGTERM);
}

export function gracefulStop(log: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): GracefulStop {
  const controller = new AbortController();
  const seen = new Set<string>();
  const onSignal = (name: NodeJS.Signals) => {
    if (seen.has(name)) {
      log(`ftjob: ${name} again: stopping now, without a checkpoint`);
      process.exit(exitCodeOf(name));
    }
    seen.add(name);
    if (controller.signal.aborted) return;
    log(`ftjob: ${name}: stopping after the current step with a checkpoint (${name} again stops at once)`);
    controller.abort(name);
  };
  for (const name of STOP_SIGNALS) process.on(name, onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const name of STOP_SIGNALS) process.off(name, onSignal);
    },
  };
}
