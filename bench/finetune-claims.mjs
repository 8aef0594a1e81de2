#!/usr/bin/env node
/**
 * The evidence behind what the examples claim for fine-tuning: each example task trained from its
 * pre-trained base model and, side by side, the SAME architecture trained from scratch (random
 * init), on the same data, the same validation split and the same fixed training budget.
 *
 *   vision  digits 5-9 (MNIST)  from examples/models/digits-cnn-0to4.onnx (supervised on digits 0-4)
 *   text    spam vs ham          from examples/models/text-encoder-mlm.onnx (masked-word pre-training)
 *
 * Arms (what starts from where, and what trains):
 *   ft-head       pre-trained, new head only             (trainable.headOnly)
 *   ft-upper      pre-trained, upper layers + new head   (trainable.freezeBelow as in the example YAML:
 *                                                          conv3 for digits, pos.weight for text)
 *   ft-all        pre-trained, everything
 *   scratch-all   random init, everything                (the baseline that matters)
 *   scratch-head  random init, new head only             (sanity baseline: a head on random features)
 *
 * Random init: the architecture builders of examples/pretrain/architectures.mjs (the ones
 * make-base-models.mjs pre-trains) with init seed 1000 + run seed (pre-training used 1 and 2). The
 * random text encoder carries the pre-trained model's tokenizer (a word list, not weights). The new
 * 5- or 2-class head replaces the old one in every arm, seeded by the run seed, so the fine-tuned
 * and scratch runs of one seed start from the same head, see the same labelled sample, in the same
 * order, and are scored on the same validation examples (the seed picks all of these).
 *
 * Budgets: 10, 50 and all labelled examples per class (dataset.maxExamplesPerClass). Each budget row
 * has one fixed number of optimizer steps, batch size, learning rate and schedule for every arm
 * (the example job's AdamW learning rate and cosine schedule; NOT tuned per arm), no early
 * stopping, an evaluation every EVAL_EVERY steps. Reported per arm, over seeds 0..n-1 (mean ±
 * sample standard deviation): the final validation accuracy (end of the budget, no selection), the
 * best one (the evaluation the trainer keeps and exports: picked on the validation set, so
 * optimistic), the first evaluated step reaching each target accuracy ('—' when no seed reaches
 * it, 'k/n' when only k do), the trainable values and seconds per run; and, per budget, the paired
 * (same seed) difference in final accuracy between each fine-tuned arm and scratch-all.
 *
 * Usage (from the repository root, after `npx tsc -b packages/cli`):
 *
 *   node bench/finetune-claims.mjs [--seeds 3] [--quick] [--out docs/claims.md]
 *                                  [--tasks digits,spam] [--budgets 10,50,all] [--arms ft-upper,...]
 *                                  [--json results.json] [--quiet]
 *
 *   --quick   1 seed, budgets 10 and 50 (about 1-2 minutes on two cores); without it, 3 seeds and
 *             budgets 10, 50 and all (about 8-10 minutes on two shared cores)
 *   --out     also write the Markdown report (what is compared, command, machine, date, tables,
 *             a reading generated from the numbers) to this file
 *   --json    write every run (eval history included) as JSON (packages/cli/src/claims.test.ts uses it)
 *
 * onnxruntime runs one thread per op; runs are sequential. Outputs (models, checkpoints, reports)
 * go to a temporary folder (in /dev/shm when there is one), deleted at the end. Not a test: it
 * asserts nothing.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem, platform, arch } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { validateFineTuneJob } from '@finetune/api';
import { loadModel, prepareRun, runTraining, saveModel, TOKENIZER_METADATA_KEY } from '@finetune/worker';
import { buildCnn, buildEncoder, TEXT_ARCH } from '../examples/pretrain/architectures.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    json: { type: 'string' },
    tasks: { type: 'string' },
    budgets: { type: 'string' },
    arms: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});

/** Threads per onnxruntime op: one, so that a run does not depend on the core count. */
const THREADS = 1;
/** Steps between evaluations (the resolution of "steps to target"). */
const EVAL_EVERY = 5;
/** Random-init seed = SCRATCH_INIT_SEED + run seed (the committed models used init seeds 1 and 2). */
const SCRATCH_INIT_SEED = 1000;

const TASKS = {
  digits: {
    title: 'vision: digits 5–9 (MNIST)',
    short: 'digits 5–9',
    pretrained: 'examples/models/digits-cnn-0to4.onnx',
    pretrainedWhat: 'CNN pre-trained supervised on MNIST digits 0–4',
    yaml: 'examples/digits-5to9.yaml',
    scratch: (seed) => buildCnn(seed),
    dataset: { builtin: 'mnist', digits: [5, 6, 7, 8, 9] },
    numClasses: 5,
    freezeBelow: 'conv3',
    optimizer: { type: 'adamw', learningRate: 0.01 },
    schedule: { type: 'cosine', warmupSteps: 10 },
    batchSize: 25,
    /** Optimizer steps per budget row (examples per class -> steps). */
    steps: { 10: 100, 50: 200, all: 300 },
    targets: [0.9, 0.95],
  },
  spam: {
    title: 'text: spam vs ham (SpamAssassin)',
    short: 'spam vs ham',
    pretrained: 'examples/models/text-encoder-mlm.onnx',
    pretrainedWhat: 'one-block transformer encoder pre-trained by masked-word prediction on the unlabelled email bodies',
    yaml: 'examples/spam-ham.yaml',
    scratch: (seed) => buildEncoder(TEXT_ARCH, seed),
    dataset: { builtin: 'spam-assassin' },
    numClasses: 2,
    freezeBelow: 'pos.weight',
    optimizer: { type: 'adamw', learningRate: 0.003 },
    schedule: { type: 'cosine', warmupSteps: 10 },
    batchSize: 32,
    steps: { 10: 60, 50: 150, all: 300 },
    targets: [0.9, 0.95],
  },
};

const ARMS = {
  'ft-head': { label: 'fine-tuned, head only', pretrained: true, trainable: () => ({ headOnly: true }) },
  'ft-upper': { label: 'fine-tuned, freezeBelow', pretrained: true, trainable: (t) => ({ freezeBelow: t.freezeBelow }) },
  'ft-all': { label: 'fine-tuned, everything', pretrained: true, trainable: () => undefined },
  'scratch-all': { label: 'scratch, everything', pretrained: false, trainable: () => undefined },
  'scratch-head': { label: 'scratch, head only', pretrained: false, trainable: () => ({ headOnly: true }) },
};
const FT_ARMS = ['ft-head', 'ft-upper', 'ft-all'];
const BASELINE = 'scratch-all';

function list(value, fallback, allowed, what) {
  const items = value ? value.split(',').map((s) => s.trim()).filter(Boolean) : fallback;
  for (const x of items) {
    if (!allowed.includes(x)) {
      console.error(`--${what}: '${x}' is not one of ${allowed.join(', ')}`);
      process.exit(2);
    }
  }
  return items;
}

const seedCount = Number(args.seeds ?? (args.quick ? 1 : 3));
if (!Number.isInteger(seedCount) || seedCount < 1) {
  console.error(`--seeds: expected a positive integer, got '${args.seeds}'`);
  process.exit(2);
}
const SEEDS = Array.from({ length: seedCount }, (_, i) => i);
const TASK_NAMES = list(args.tasks, Object.keys(TASKS), Object.keys(TASKS), 'tasks');
const BUDGETS = list(args.budgets, args.quick ? ['10', '50'] : ['10', '50', 'all'], ['10', '50', 'all'], 'budgets');
const ARM_NAMES = list(args.arms, Object.keys(ARMS), Object.keys(ARMS), 'arms');

const note = (...xs) => {
  if (!args.quiet) console.error(...xs);
};

const pct = (x) => (x * 100).toFixed(1);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n - 1); 0 for a single value. */
const std = (xs) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));
const pm = (xs, f = pct) => (xs.length > 1 ? `${f(mean(xs))} ± ${f(std(xs))}` : f(mean(xs)));
const group = (n) => n.toLocaleString('en-US');

function job(name, spec) {
  return validateFineTuneJob({ apiVersion: 'finetune.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name }, spec });
}

/** The random-init model of `task` for run seed `seed`, written under `work`; its path. */
async function scratchModel(taskName, seed, work) {
  const task = TASKS[taskName];
  const model = task.scratch(SCRATCH_INIT_SEED + seed);
  // Text data is tokenized with the tokenizer in the model's metadata: give the random encoder the
  // pre-trained model's word list (learned from the unlabelled bodies; no weights).
  const pretrained = await loadModel(join(ROOT, task.pretrained));
  const tokenizer = pretrained.metadata[TOKENIZER_METADATA_KEY];
  model.metadata = tokenizer ? { [TOKENIZER_METADATA_KEY]: tokenizer } : {};
  const path = join(work, `${taskName}-scratch-${seed}.onnx`);
  saveModel(model, path);
  return path;
}

async function runOne(taskName, budget, armName, seed, source, work) {
  const task = TASKS[taskName];
  const arm = ARMS[armName];
  const steps = task.steps[budget];
  const trainable = arm.trainable(task);
  const name = `claims-${taskName}-${budget}-${armName}-s${seed}`;
  const output = join(work, name);
  const j = job(name, {
    model: { source, head: { numClasses: task.numClasses, mode: 'replace' } },
    dataset: { ...task.dataset, ...(budget === 'all' ? {} : { maxExamplesPerClass: Number(budget) }) },
    ...(trainable ? { trainable } : {}),
    optimizer: task.optimizer,
    schedule: task.schedule,
    training: { maxSteps: steps, batchSize: task.batchSize, seed, evalEvery: EVAL_EVERY, checkpointEvery: steps },
    output: { path: output },
  });
  const started = performance.now();
  const prepared = await prepareRun(j);
  const { summary } = await runTraining(prepared, { threads: THREADS });
  const seconds = (performance.now() - started) / 1000;
  rmSync(output, { recursive: true, force: true });
  const evals = summary.eval.map((e) => ({ step: e.step, accuracy: e.accuracy, loss: e.loss }));
  const final = evals.at(-1);
  const stepsTo = Object.fromEntries(task.targets.map((t) => [String(t), evals.find((e) => e.accuracy >= t)?.step ?? null]));
  return {
    task: taskName,
    budget,
    arm: armName,
    seed,
    steps,
    train: prepared.train.length,
    validation: prepared.validation.length,
    trainableValues: summary.parameters.trainableValues,
    final: final.accuracy,
    best: summary.best.accuracy,
    bestStep: summary.best.step,
    stepsTo,
    seconds,
    eval: evals,
  };
}

function stepsCell(runs, target) {
  const reached = runs.map((r) => r.stepsTo[String(target)]).filter((s) => s !== null);
  if (reached.length === 0) return '—';
  const m = Math.round(mean(reached));
  return reached.length === runs.length ? String(m) : `${m} (${reached.length}/${runs.length})`;
}

/** Paired (same seed) differences in final accuracy, `arm` minus the baseline. */
function pairedGaps(results, taskName, budget, arm) {
  const gaps = [];
  for (const seed of SEEDS) {
    const a = results.find((r) => r.task === taskName && r.budget === budget && r.arm === arm && r.seed === seed);
    const b = results.find((r) => r.task === taskName && r.budget === budget && r.arm === BASELINE && r.seed === seed);
    if (a && b) gaps.push(a.final - b.final);
  }
  return gaps;
}

const budgetLabel = (b) => (b === 'all' ? 'all' : b);
const seedsText = () => `${SEEDS.length} seed${SEEDS.length === 1 ? '' : 's'}`;

function taskTables(results, taskName) {
  const task = TASKS[taskName];
  const rows = results.filter((r) => r.task === taskName);
  if (rows.length === 0) return '';
  const lines = [];
  const first = (b) => rows.find((r) => r.budget === b);
  const sizes = BUDGETS.filter(first).map((b) => `${budgetLabel(b)}/class: ${group(first(b).train)} train, ${group(first(b).steps)} steps`).join('; ');
  lines.push(`### ${task.title}`, '');
  lines.push(
    `From \`${task.pretrained}\` (${task.pretrainedWhat}) vs the same architecture from random init. ` +
      `${rows[0].validation} validation examples; batch ${task.batchSize}; AdamW lr ${task.optimizer.learningRate}, cosine with ${task.schedule.warmupSteps} warmup steps, ` +
      `for every arm; evaluation every ${EVAL_EVERY} steps. ${sizes}. freezeBelow: \`${task.freezeBelow}\` (as in \`${task.yaml}\`).`,
    '',
  );
  const targetHeads = task.targets.map((t) => `steps to ${Math.round(t * 100)}%`);
  lines.push(`| examples/class | arm | trains (values) | final val acc % | best val acc % | ${targetHeads.join(' | ')} | s/run |`);
  lines.push(`|---|---|---:|---:|---:|${task.targets.map(() => '---:|').join('')}---:|`);
  for (const budget of BUDGETS) {
    for (const arm of ARM_NAMES) {
      const runs = rows.filter((r) => r.budget === budget && r.arm === arm);
      if (runs.length === 0) continue;
      const label = arm === 'ft-upper' ? `${ARMS[arm].label} \`${task.freezeBelow}\`` : ARMS[arm].label;
      const bold = arm === BASELINE ? (s) => `**${s}**` : (s) => s;
      lines.push(
        `| ${budgetLabel(budget)} | ${bold(label)} | ${group(runs[0].trainableValues)} | ${bold(pm(runs.map((r) => r.final)))} | ${pm(runs.map((r) => r.best))} | ` +
          `${task.targets.map((t) => stepsCell(runs, t)).join(' | ')} | ${mean(runs.map((r) => r.seconds)).toFixed(1)} |`,
      );
    }
  }
  const ftArms = FT_ARMS.filter((a) => ARM_NAMES.includes(a));
  if (ARM_NAMES.includes(BASELINE) && ftArms.length > 0) {
    lines.push('', `Paired gap in final validation accuracy, fine-tuned minus scratch (everything trains), percentage points: mean ± std [min, max] over ${seedsText()}`, '');
    lines.push(`| examples/class | ${ftArms.map((a) => (a === 'ft-upper' ? `${ARMS[a].label} \`${task.freezeBelow}\`` : ARMS[a].label)).join(' | ')} |`);
    lines.push(`|---|${ftArms.map(() => '---:|').join('')}`);
    for (const budget of BUDGETS) {
      const cells = ftArms.map((a) => {
        const g = pairedGaps(results, taskName, budget, a);
        if (g.length === 0) return '';
        const sign = (x) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}`;
        return g.length > 1 ? `${sign(mean(g))} ± ${(std(g) * 100).toFixed(1)} [${sign(Math.min(...g))}, ${sign(Math.max(...g))}]` : sign(g[0]);
      });
      lines.push(`| ${budgetLabel(budget)} | ${cells.join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

/** A verdict on paired gaps (fractions): clear only when every seed agrees and the mean is at least a point. */
function verdict(g) {
  const m = mean(g) * 100;
  if (g.every((x) => x > 0)) return m >= 1 ? 'pre-training helps clearly' : 'pre-training helps a little';
  if (g.every((x) => x < 0)) return m <= -1 ? 'scratch is ahead' : 'scratch is a little ahead';
  return Math.abs(m) < 1 ? 'no clear difference' : 'mixed across seeds';
}

const points = (g) => `${mean(g) >= 0 ? '+' : ''}${(mean(g) * 100).toFixed(1)}`;

/** Paired differences in final accuracy between two arms (same task, budget, seed). */
function armGaps(results, taskName, budget, a, b) {
  const gaps = [];
  for (const seed of SEEDS) {
    const x = results.find((r) => r.task === taskName && r.budget === budget && r.arm === a && r.seed === seed);
    const y = results.find((r) => r.task === taskName && r.budget === budget && r.arm === b && r.seed === seed);
    if (x && y) gaps.push(x.final - y.final);
  }
  return gaps;
}

/**
 * A reading generated from the numbers (so that it stays true when the script is rerun): per task,
 * pre-trained vs scratch at each budget (verdict on the example's arm, freezeBelow, with the other
 * arms' gaps alongside), what freezing costs or buys against fine-tuning everything, the steps to
 * the first target, and what a head alone gets on pre-trained vs random features.
 */
function reading(results) {
  const out = [];
  const helps = [];
  const doesNot = [];
  const has = (a) => ARM_NAMES.includes(a);
  for (const taskName of TASK_NAMES) {
    const task = TASKS[taskName];
    const rows = results.filter((r) => r.task === taskName);
    if (rows.length === 0) continue;
    const lines = [];
    const budgets = BUDGETS.filter((b) => rows.some((r) => r.budget === b));
    if (has(BASELINE)) {
      const parts = [];
      for (const budget of budgets) {
        const arms = FT_ARMS.filter(has).map((a) => ({ a, g: pairedGaps(results, taskName, budget, a) })).filter((x) => x.g.length > 0);
        if (arms.length === 0) continue;
        const main = arms.find((x) => x.a === 'ft-upper') ?? arms[0];
        const name = (a) => (a === 'ft-upper' ? 'freezeBelow' : a === 'ft-head' ? 'head only' : 'everything');
        const cell = (x) => `${name(x.a)} ${points(x.g)} (${x.g.filter((v) => v > 0).length}/${x.g.length} seeds ahead)`;
        const v = verdict(main.g);
        (v === 'pre-training helps clearly' ? helps : doesNot).push(`${task.short} ${budgetLabel(budget)}/class${v === 'pre-training helps clearly' ? '' : ` (${v})`}`);
        parts.push(`${budgetLabel(budget)}/class: ${cell(main)}, so ${v}; ${arms.filter((x) => x !== main).map(cell).join(', ')}`);
      }
      if (parts.length) lines.push(`pre-trained minus scratch, final accuracy in points (verdict on ${has('ft-upper') ? "freezeBelow, the example jobs' setting" : name(FT_ARMS.find(has))}): ${parts.join('; ')}`);
    }
    if (has('ft-all') && (has('ft-head') || has('ft-upper'))) {
      const parts = budgets.map((budget) => {
        const cells = ['ft-head', 'ft-upper'].filter(has).map((a) => `${a === 'ft-head' ? 'head only' : 'freezeBelow'} ${points(armGaps(results, taskName, budget, a, 'ft-all'))}`);
        return `${budgetLabel(budget)}/class ${cells.join(', ')}`;
      });
      const secs = (a) => mean(rows.filter((r) => r.arm === a).map((r) => r.seconds));
      const speed = has('ft-upper') ? ` (freezeBelow takes ${((100 * secs('ft-upper')) / secs('ft-all')).toFixed(0)}% of the time of training everything, averaged over budgets)` : '';
      lines.push(`freezing, against fine-tuning everything, in points: ${parts.join('; ')}${speed}`);
    }
    if (has('ft-all') && has(BASELINE)) {
      const t = task.targets[0];
      const parts = budgets.map((budget) => {
        const cell = (a) => stepsCell(rows.filter((r) => r.budget === budget && r.arm === a), t);
        return `${budgetLabel(budget)}/class ${cell('ft-all')} vs ${cell(BASELINE)}`;
      });
      lines.push(`steps to ${Math.round(t * 100)}% with everything trainable, fine-tuned vs scratch: ${parts.join('; ')}`);
    }
    if (has('ft-head') && has('scratch-head')) {
      const parts = budgets.map((budget) => {
        const acc = (a) => pct(mean(rows.filter((r) => r.budget === budget && r.arm === a).map((r) => r.final)));
        return `${budgetLabel(budget)}/class ${acc('ft-head')}% vs ${acc('scratch-head')}%`;
      });
      lines.push(`a head alone on pre-trained vs random features: ${parts.join('; ')}`);
    }
    out.push(`- **${task.short}**:\n${lines.map((l) => `  - ${l}.`).join('\n')}`);
  }
  const summary =
    helps.length + doesNot.length === 0
      ? ''
      : `In short: pre-training helps clearly (every seed ahead of scratch, by at least a point on average) for ${helps.join(', ') || 'none of the rows'}; ` +
        `it does not for ${doesNot.join(', ') || 'none of the rows'}.\n\n`;
  return summary + out.join('\n');
}

function machine() {
  const c = cpus();
  const ortVersion = JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')).version;
  return `${c[0]?.model ?? 'unknown CPU'} × ${c.length} logical cores, ${Math.round(totalmem() / 2 ** 30)} GiB, ${platform()}/${arch()}, Node ${process.version}, onnxruntime-node ${ortVersion}, 1 thread per op`;
}

// ---------------------------------------------------------------------------------------------

const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const work = mkdtempSync(join(base, 'finetune-claims-'));
const command = ['node', 'bench/finetune-claims.mjs', ...process.argv.slice(2)].join(' ');
const load = loadavg()[0];
const startedAt = new Date();
const clock = performance.now();
const results = [];
try {
  const total = TASK_NAMES.length * BUDGETS.length * ARM_NAMES.length * SEEDS.length;
  note(`${total} runs: tasks ${TASK_NAMES.join(', ')}; budgets ${BUDGETS.join(', ')}; arms ${ARM_NAMES.join(', ')}; seeds ${SEEDS.join(', ')}`);
  for (const taskName of TASK_NAMES) {
    for (const seed of SEEDS) {
      const scratch = ARM_NAMES.some((a) => !ARMS[a].pretrained) ? await scratchModel(taskName, seed, work) : undefined;
      for (const budget of BUDGETS) {
        for (const arm of ARM_NAMES) {
          const source = ARMS[arm].pretrained ? join(ROOT, TASKS[taskName].pretrained) : scratch;
          const r = await runOne(taskName, budget, arm, seed, source, work);
          results.push(r);
          note(
            `[${results.length}/${total}] ${taskName} ${budget}/class seed ${seed} ${arm}: final ${pct(r.final)}%, best ${pct(r.best)}% @${r.bestStep}, ` +
              `to ${TASKS[taskName].targets.map((t) => `${Math.round(t * 100)}%: ${r.stepsTo[String(t)] ?? '—'}`).join(', ')} (${r.seconds.toFixed(1)} s)`,
          );
        }
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const seconds = (performance.now() - clock) / 1000;

const tables = TASK_NAMES.map((t) => taskTables(results, t)).filter(Boolean).join('\n\n');
console.log(tables);
console.log(`\n${results.length} runs in ${seconds.toFixed(0)} s (${machine()}; load average ${load.toFixed(1)} at the start)`);

if (args.json) {
  const path = resolve(args.json);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify({ command, date: startedAt.toISOString(), seconds, seeds: SEEDS, evalEvery: EVAL_EVERY, results }, null, 1) + '\n');
}

if (args.out) {
  const path = resolve(args.out);
  mkdirSync(dirname(path), { recursive: true });
  const doc = `# What pre-training buys: fine-tuned vs trained from scratch

Generated by \`bench/finetune-claims.mjs\` (its header documents every setting); do not edit by hand,
rerun it.

**What is compared.** For each example task, the pre-trained base model fine-tuned three ways
(new head only; the upper layers plus the head, \`trainable.freezeBelow\` as in the example job;
everything), against the **same architecture from random init** (the builders of
\`examples/pretrain/architectures.mjs\`, init seed ${SCRATCH_INIT_SEED} + run seed) with everything
trainable, and, as a sanity baseline, a head alone on the random network. Every arm of one seed
gets the same labelled sample, validation split, batch order, new-head init, number of steps,
learning rate and schedule (the example job's; not tuned per arm), no early stopping, and an
evaluation every ${EVAL_EVERY} steps. *Final* is the validation accuracy at the end of the budget
(no selection); *best* is the best evaluation (what the trainer exports; picked on the validation
set, so optimistic). Steps to a target are the first evaluated step at or above it, averaged over
the seeds that reach it (\`k/n\` when only k of n do; — when none does). ± is the sample standard
deviation over seeds ${SEEDS.join(', ')}; the seed also changes the validation split and the
labelled sample.

**Command.** \`${command}\` (after \`npx tsc -b packages/cli\`), ${results.length} runs in ${seconds.toFixed(0)} s.

**Machine.** ${machine()}; load average ${load.toFixed(1)} when the run started (a shared machine:
seconds per run are indicative only).

**Date.** ${startedAt.toISOString().slice(0, 10)}.

${tables}

## Reading

${reading(results)}

Caveats: one learning rate per task for every arm (the example job's), not tuned per arm, so an
arm that would prefer another rate is handicapped by the same amount at every budget; a fixed
number of steps per budget row (long enough that the few-label rows plateau, about ${TASK_NAMES.map((t) => `${Math.round(TASKS[t].steps['10'] / Math.ceil((10 * TASKS[t].numClasses) / TASKS[t].batchSize))} epochs for ${TASKS[t].short}`).join(', ')} at 10/class; under two epochs with all examples);
${seedsText()} and validation sets of a few hundred examples, so differences below about one
point are noise. The random text encoder uses the pre-trained model's tokenizer (its vocabulary
was learned from the same unlabelled emails).
`;
  writeFileSync(path, doc);
  console.log(`wrote ${path}`);
}
