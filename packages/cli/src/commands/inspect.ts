/** `ftjob inspect MODEL`: what a model takes, returns and holds, to choose --trainable patterns. */
import { Command } from 'commander';
import { loadModel, summarizeModel, supportedOps } from '@finetune/worker';

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('print a model\'s inputs, outputs, initializers and ops (marking ops without a gradient rule)')
    .argument('<model>', 'ONNX model: a path, file:// or http(s):// URL')
    .option('--json', 'print the summary as JSON')
    .action(async (source: string, opts: { json?: boolean }) => {
      const summary = summarizeModel(await loadModel(source));
      if (opts.json) {
        process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
        return;
      }
      const known = new Set(supportedOps());
      const shape = (s: unknown[] | undefined) => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '(no shape)');
      const lines = [
        `producer: ${summary.producer || 'unknown'}; opsets: ${summary.opsets.join(', ')}`,
        'inputs:',
        ...summary.inputs.map((i) => `  ${i.name}: ${i.type} ${shape(i.shape)}`),
        'outputs:',
        ...summary.outputs.map((o) => `  ${o.name}: ${o.type} ${shape(o.shape)}`),
        `initializers: ${summary.initializers.length} (${summary.parameters.toLocaleString('en-US')} float values)`,
        ...summary.initializers.map((t) => `  ${t.name}: ${t.type} [${t.dims.join(', ')}]`),
        'ops:',
        ...Object.entries(summary.ops).map(([op, n]) => `  ${op} x${n}${known.has(op) ? '' : '  (no gradient rule: freeze what lies below it)'}`),
        '',
      ];
      process.stdout.write(lines.join('\n'));
    });
}
