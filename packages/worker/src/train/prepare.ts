/**
 * From a validated FineTuneJob to everything the loop needs: the (re-headed) model, the resolved
 * trainable parameters, the training graphs and the datasets. All user-facing problems surface
 * here, before any training starts or any output is written.
 */
import type { FineTuneJob } from '@finetune/api';
import { loadModel } from '../onnx/load.js';
import type { Model, ValueInfo } from '../onnx/types.js';
import { realInputs } from '../autodiff/probe.js';
import { buildTrainingArtifacts, type TrainingArtifacts } from '../autodiff/training-graph.js';
import { attachHead } from '../model/head.js';
import { resolveTrainable } from '../model/select.js';
import { loadBuiltin } from '../data/builtin.js';
import { loadDatasetFiles } from '../data/files.js';
import { type Dataset, exampleSize } from '../data/dataset.js';
import { trainValidationSplit, limitPerClass } from '../data/sampler.js';
import { checkLabels } from '../data/validate.js';
import { Tokenizer, TOKENIZER_METADATA_KEY } from '../data/tokenizer.js';
import { UserError } from '../errors.js';

export interface PreparedRun {
  job: FineTuneJob;
  /** The model being fine-tuned (with its new head, if any), before training. */
  model: Model;
  artifacts: TrainingArtifacts;
  train: Dataset;
  validation: Dataset;
  /** Class count for cross_entropy (the prediction's last axis). */
  numClasses?: number;
  classes?: string[];
  tokenizer?: Tokenizer;
  /** The model input the dataset feeds. */
  inputName: string;
}

export async function prepareRun(job: FineTuneJob): Promise<PreparedRun> {
  const spec = job.spec;
  let model = await loadModel(spec.model.source);
  let headParams: string[] | undefined;
  if (spec.model.head) {
    const head = await attachHead(model, {
      numClasses: spec.model.head.numClasses,
      mode: spec.model.head.mode,
      seed: spec.model.head.seed ?? spec.training.seed,
      ...(spec.model.output ? { output: spec.model.output } : {}),
    });
    model = head.model;
    headParams = head.headParams;
  }
  const output = spec.model.head?.mode === 'append' ? model.graph.outputs[0]!.name : spec.model.output;
  const inputs = realInputs(model);
  const inputName = chooseInput(inputs, spec.model.inputs);

  const tokenizerJson = model.metadata[TOKENIZER_METADATA_KEY];
  const tokenizer = tokenizerJson ? Tokenizer.fromJSON(tokenizerJson) : undefined;
  const { train, validation } = await loadData(job, inputs.find((i) => i.name === inputName)!, tokenizer);

  const trainable = resolveTrainable(model, spec.trainable, headParams);
  const artifacts = await buildTrainingArtifacts(model, {
    loss: spec.training.loss,
    ...(trainable ? { trainable } : {}),
    ...(output ? { output } : {}),
  });

  let numClasses: number | undefined;
  if (spec.training.loss === 'cross_entropy') {
    numClasses = artifacts.predictionDims.at(-1);
    if (numClasses === undefined) throw new UserError(`output '${artifacts.prediction}' has no class axis`);
    const classes = train.classes ?? spec.dataset.classes;
    if (classes && classes.length > numClasses) {
      throw new UserError(`the dataset has ${classes.length} classes but the model's output '${artifacts.prediction}' has ${numClasses}; set spec.model.head.numClasses: ${classes.length}`);
    }
    checkLabels(train, numClasses);
    checkLabels(validation, numClasses);
  }
  const classes = train.classes ?? spec.dataset.classes;
  return { job, model, artifacts, train, validation, inputName, ...(numClasses ? { numClasses } : {}), ...(classes ? { classes } : {}), ...(tokenizer ? { tokenizer } : {}) };
}

function chooseInput(inputs: ValueInfo[], wanted: string[] | undefined): string {
  const names = inputs.map((i) => i.name);
  if (wanted && wanted.length > 1) throw new UserError(`spec.model.inputs: datasets feed one model input; got ${wanted.length}`);
  const name = wanted?.[0] ?? names[0];
  if (!name || !names.includes(name)) {
    throw new UserError(`spec.model.inputs: the model has no input '${name}' (inputs: ${names.join(', ') || 'none'})`);
  }
  const others = names.filter((n) => n !== name);
  if (others.length > 0) throw new UserError(`the model also needs input(s) ${others.join(', ')}, which the dataset does not feed`);
  return name;
}

/** The per-example shape the model input expects (its dims after the batch axis), when fixed. */
function exampleShape(input: ValueInfo): number[] | undefined {
  const dims = input.shape?.slice(1);
  return dims && dims.every((d): d is number => typeof d === 'number') ? dims : undefined;
}

async function loadData(job: FineTuneJob, input: ValueInfo, tokenizer: Tokenizer | undefined): Promise<{ train: Dataset; validation: Dataset }> {
  const ds = job.spec.dataset;
  const seed = job.spec.training.seed;
  const shape = exampleShape(input);
  const isText = ds.builtin === 'spam-assassin' || ds.textField !== undefined;
  const maxLength = ds.maxLength ?? (isText ? shape?.[0] : undefined);
  if (isText && !tokenizer) {
    throw new UserError(`spec.dataset: text data needs the model's tokenizer, but model '${job.spec.model.source}' carries none in its metadata ('${TOKENIZER_METADATA_KEY}')`);
  }
  if (isText && !maxLength) throw new UserError('spec.dataset.maxLength: required, the model input has no fixed sequence length');

  const load = async (file: NonNullable<typeof ds.train>): Promise<Dataset> =>
    loadDatasetFiles({
      path: file.path,
      ...(file.format ? { format: file.format } : {}),
      ...(file.labels ? { labelsPath: file.labels } : {}),
      inputName: input.name,
      labelField: ds.labelField,
      labelKind: job.spec.training.loss === 'mse' ? 'regression' : 'class',
      ...(ds.textField ? { textField: ds.textField } : {}),
      ...(ds.featuresField ? { featuresField: ds.featuresField } : {}),
      ...(ds.classes ? { classes: ds.classes } : {}),
      ...(tokenizer ? { tokenizer } : {}),
      ...(maxLength ? { maxLength } : {}),
    });

  let all: Dataset;
  if (ds.builtin === 'mnist') all = await loadBuiltin('mnist', { inputName: input.name, ...(ds.digits ? { digits: ds.digits } : {}) });
  else if (ds.builtin === 'spam-assassin') all = await loadBuiltin('spam-assassin', { inputName: input.name, tokenizer: tokenizer!, maxLength: maxLength! });
  else all = await load(ds.train!);

  let train: Dataset;
  let validation: Dataset;
  if (ds.validation) {
    train = all;
    validation = await load(ds.validation);
  } else {
    ({ train, validation } = trainValidationSplit(all, ds.validationSplit, seed));
  }
  if (ds.maxExamplesPerClass) train = limitPerClass(train, ds.maxExamplesPerClass, seed);
  if (train.length === 0) throw new UserError('spec.dataset: no training examples');
  if (validation.length === 0) throw new UserError('spec.dataset: no validation examples (raise validationSplit or give a validation file)');
  return { train: fitShape(train, input, shape), validation: fitShape(validation, input, shape) };
}

/** Images stored as [1, 28, 28] can feed a model that takes [784] (same values, other shape). */
function fitShape(ds: Dataset, input: ValueInfo, shape: number[] | undefined): Dataset {
  const feature = ds.features[input.name]!;
  if (!shape || shape.join() === feature.shape.join()) return ds;
  if (exampleSize(shape) !== exampleSize(feature.shape)) {
    throw new UserError(`model input '${input.name}' takes examples of shape [${shape.join(', ')}], the dataset has [${feature.shape.join(', ')}]`);
  }
  return { ...ds, features: { ...ds.features, [input.name]: { ...feature, shape: [...shape] } } };
}
