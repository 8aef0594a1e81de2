/** `ftjob artifacts MODEL --out DIR`: writes training.onnx and eval.onnx for a forward model. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadModel, writeArtifacts, LOSS_KINDS, type LossKind } from '@finetune/worker';

interface ArtifactsOptions {
  out: string;
  trainable?: string[];
  loss: LossKind;
  output?: string;
  dim?: Record<string, number>;
  json?: boolean;
}

function parseDim(value: string, previous: Record<string, number> | undefined): Record<string, number> {
  const m = /^([^=]+)=(\d+)$/.exec(value);
  if (!m || Number(m[2]) < 1) throw new InvalidArgumentError(`expected NAME=SIZE with SIZE >= 1, got '${value}'`);
  return { ...previous, [m[1]!]: Number(m[2]) };
}

export function artifactsCommand(): Command {
  return new Command('artifacts')
    .description('write training.onnx (loss + gradients, standard ONNX ops only) and eval.onnx for an ONNX model')
    .argument('<model>', 'forward ONNX model: a path, file:// or http(s):// URL')
    .requiredOption('--out <dir>', 'folder for training.onnx, eval.onnx and artifacts.json')
    .option('--trainable <name-or-glob...>', 'initializers to train (exact names or globs); default: every float32 initializer')
    .addOption(new Option('--loss <kind>', 'loss on the model output').choices(LOSS_KINDS).default('cross_entropy'))
    .option('--output <name>', 'the model output the loss reads (default: the first output)')
    .option('--dim <name=size>', 'size of a symbolic input dimension while probing shapes (repeatable)', parseDim)
    .option('--json', 'print the report as JSON')
    .action(async (model: string, opts: ArtifactsOptions) => {
      const forward = await loadModel(model);
      const report = await writeArtifacts(forward, opts.out, {
        loss: opts.loss,
        ...(opts.trainable ? { trainable: opts.trainable } : {}),
        ...(opts.output ? { output: opts.output } : {}),
        ...(opts.dim ? { probe: { dims: opts.dim } } : {}),
      });
      if (opts.json) {
        process.stdout.write(JSON.stringify(report, null, 2) + '\n');
        return;
      }
      const fmt = (n: number) => n.toLocaleString('en-US');
      process.stdout.write(
        [
          `trainable: ${report.params.length} tensors, ${fmt(report.parameterCount.trainable)} values`,
          ...report.params.map((p) => `  ${p.name} [${p.dims.join(', ')}]`),
          `frozen: ${report.frozen.length} tensors, ${fmt(report.parameterCount.frozen)} values`,
          ...(report.disconnected.length > 0 ? [`not connected to the loss (left frozen): ${report.disconnected.join(', ')}`] : []),
          `loss: ${report.loss} on output '${report.prediction}', labels input '${report.labels}'`,
          `wrote ${report.training}`,
          `wrote ${report.eval}`,
          `wrote ${report.manifest}`,
          '',
        ].join('\n'),
      );
    });
}
