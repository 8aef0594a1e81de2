/**
 * How a worker's exit code tells the controller whether restarting the gang can help. The
 * worker exits with these; any other non-zero code (a crash, 137 for SIGKILL/OOM, 143 for a
 * SIGTERM that stopped training after a checkpoint) is treated as retryable.
 */
export const WORKER_EXIT = {
  succeeded: 0,
  /** Bad spec, model or data: the same input fails the same way again. */
  invalidInput: 2,
  /** A peer died, hung or never came: restarting the gang from the last checkpoint can succeed. */
  peerFailure: 3,
} as const;

/** True when a worker that exited with `code` may succeed if the gang is restarted. */
export function isRetryableExit(code: number): boolean {
  return code !== WORKER_EXIT.succeeded && code !== WORKER_EXIT.invalidInput;
}
