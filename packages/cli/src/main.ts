/** The `ftjob` command line: one entry point, one subcommand per job. */
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
    if (isUserError(err)) {
      process.stderr.write(`ftjob: error: ${err.message}\n`);
      return WORKER_EXIT.invalidInput;
    }
    if (err instanceof CollectiveError) {
      process.stderr.write(`ftjob: error: ${err.message}\n`);
      return WORKER_EXIT.peerFailure;
    }
    if (err instanceof TrainingInterrupted) {
      process.stderr.write(`ftjob: ${err.message}\n`);
      return exitCodeOf(err.reason);
    }
    if (err instanceof Interrupted) {
      process.stderr.write(`ftjob: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}
