/** The `ftjob` command line: one entry point, one subcommand per job. */
import { writeFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { WORKER_EXIT } from '@finetune/api';
import { CollectiveError, isUserError, TrainingInterrupted } from '@finetune/worker';
import { exitCodeOf } from './graceful-stop.js';
import { artifactsCommand } from './commands/artifacts.js';
import { inspectCommand } from './commands/inspect.js';
import { runCommand, Interrupted } from './commands/run.js';
import { workerCommand } from './commands/worker.js';
import { benchCommand } from './commands/bench.js';
import { controllerCommand } from './commands/controller.js';

export function buildProgram(): Command {
  const program = new Command('ftjob')
    .description('finetune-operator: fine-tune pre-trained ONNX models, locally or on Kubernetes')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  program.addCommand(runCommand());
  program.addCommand(workerCommand());
  program.addCommand(artifactsCommand());
  program.addCommand(inspectCommand());
  program.addCommand(benchCommand());
  program.addCommand(controllerCommand());
  return program;
}

/**
 * Runs the CLI and returns the process exit code; user errors print one line, not a stack. The
 * codes tell the controller whether a restart can help (WORKER_EXIT in @finetune/api): bad input
 * exits 2 (permanent), a lost peer 3 (retryable), a stop by SIGTERM/SIGINT 143/130 (retryable,
 * after a checkpoint), a bug keeps its stack trace and exits 1.
 */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (isUserError(err)) return fail(err.message, WORKER_EXIT.invalidInput, 'error: ');
    if (err instanceof CollectiveError) return fail(err.message, WORKER_EXIT.peerFailure, 'error: ');
    if (err instanceof TrainingInterrupted) return fail(err.message, exitCodeOf(err.reason));
    if (err instanceof Interrupted) return fail(err.message, err.exitCode);
    throw err;
  }
}

/**
 * Says why the command stopped: on stderr, and in FT_TERMINATION_LOG when set (a worker pod's
 * terminationMessagePath, which Kubernetes copies into the pod status and the controller into the
 * job's condition). Returns `code`.
 */
function fail(message: string, code: number, label = ''): number {
  process.stderr.write(`ftjob: ${label}${message}\n`);
  const path = process.env.FT_TERMINATION_LOG;
  if (path) {
    try {
      writeFileSync(path, message.slice(0, 4000));
    } catch {
      // Best effort: the message is on stderr, and the pod falls back to its log.
    }
  }
  return code;
}
