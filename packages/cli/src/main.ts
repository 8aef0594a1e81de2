/** The `ftjob` command line: one entry point, one subcommand per job. */
import { Command, CommanderError } from 'commander';
import { isUserError } from '@finetune/worker';
import { artifactsCommand } from './commands/artifacts.js';
import { inspectCommand } from './commands/inspect.js';
import { runCommand } from './commands/run.js';
import { workerCommand } from './commands/worker.js';
import { benchCommand } from './commands/bench.js';

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
  return program;
}

/** Runs the CLI and returns the process exit code; user errors print one line, not a stack. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (isUserError(err)) {
      process.stderr.write(`ftjob: error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
