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
