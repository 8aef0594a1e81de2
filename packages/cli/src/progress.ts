/**
 * Progress for `ftjob run`: a live bar on a terminal (cli-progress), one line per evaluation and
 * every few seconds otherwise, so CI logs stay readable.
 */
import cliProgress from 'cli-progress';
import type { ProgressSink, RunInfo, TrainPoint, EvalPoint } from '@finetune/worker';

const fmt = (x: number | undefined, digits = 4) => (x === undefined || !Number.isFinite(x) ? '-' : x.toPrecision(digits));

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  const tty = Boolean(stream.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = 0;
  let info: RunInfo | undefined;
  const log = (text: string) => {
    if (bar) bar.stop();
    stream.write(text + '\n');
    if (bar && info) {
      bar = newBar();
      bar.start(info.totalSteps, lastStep, lastPayload);
    }
  };
  let lastStep = 0;
  let lastPayload = { loss: '-', lr: '-', speed: '-', val: '-' };
  const newBar = () =>
    new cliProgress.SingleBar(
      { stream, format: 'train |{bar}| step {value}/{total} · loss {loss} · lr {lr} · {speed} ex/s · val {val} · eta {eta_formatted}', hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
  return {
    start(i) {
      info = i;
      lastStep = i.startStep;
      const fmtDims = (d: number[]) => `[${d.join(', ')}]`;
      const trainable = i.trainable.reduce((s, p) => s + p.dims.reduce((a, b) => a * b, 1), 0);
      stream.write(`job ${i.job}: ${i.trainExamples} training / ${i.validationExamples} validation examples, ${i.totalSteps} steps (${i.stepsPerEpoch} per epoch)\n`);
      stream.write(`training ${i.trainable.length} tensors (${trainable.toLocaleString('en-US')} values):\n`);
      for (const p of i.trainable) stream.write(`  ${p.name} ${fmtDims(p.dims)}\n`);
      stream.write(`frozen ${i.frozen.length} tensors${i.frozen.length ? `: ${i.frozen.slice(0, 8).join(', ')}${i.frozen.length > 8 ? ', …' : ''}` : ''}\n`);
      if (tty) {
        bar = newBar();
        bar.start(i.totalSteps, i.startStep, lastPayload);
      }
    },
    step(p: TrainPoint) {
      lastStep = p.step;
      lastPayload = { ...lastPayload, loss: fmt(p.loss), lr: fmt(p.learningRate, 3), speed: fmt(p.samplesPerSecond, 4) };
      if (bar) bar.update(p.step, lastPayload);
      else if (Date.now() - lastLine > 5000 || p.step === info?.totalSteps) {
        lastLine = Date.now();
        stream.write(`step ${p.step}/${info?.totalSteps} loss ${fmt(p.loss)} lr ${fmt(p.learningRate, 3)} ${fmt(p.samplesPerSecond)} ex/s\n`);
      }
    },
    evaluation(p: EvalPoint, improved: boolean) {
      lastPayload = { ...lastPayload, val: p.accuracy !== undefined ? `${(p.accuracy * 100).toFixed(1)}%` : fmt(p.loss) };
      log(`eval  step ${p.step} epoch ${p.epoch}: val_loss ${fmt(p.loss)}${p.accuracy !== undefined ? ` val_accuracy ${(p.accuracy * 100).toFixed(2)}%` : ''}${improved ? ' (best)' : ''}`);
    },
    message(text: string) {
      log(text);
    },
    finish() {
      bar?.stop();
      bar = undefined;
    },
  };
}
