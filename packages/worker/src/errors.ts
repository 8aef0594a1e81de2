/**
 * An error caused by what the user gave us (a file, a flag, a model, a spec). The CLI prints its
 * message as one line and exits non-zero; anything else is a bug and keeps its stack trace.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/**
 * The run was asked to stop (a signal) and did, between two steps; rank 0 saved a checkpoint of
 * `step` first. The CLI exits with 128 + the signal's number, as a process killed by it would.
 */
export class TrainingInterrupted extends Error {
  override readonly name = 'TrainingInterrupted';
  constructor(
    readonly reason: string,
    readonly step: number,
    /** The checkpoint rank 0 resumes from (undefined on other ranks, or before the first step). */
    readonly checkpoint: string | undefined,
  ) {
    super(`stopped by ${reason} after step ${step}${checkpoint ? ` (checkpoint ${checkpoint})` : ''}; continue with --resume`);
  }
}
