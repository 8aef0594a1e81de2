// FineTuneJobs for the end-to-end tests: examples/digits-5to9.yaml made small, with the model and
// the output on hostPath volumes (the node agent runs pods on this machine).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MODELS = fileURLToPath(new URL('../../examples/models', import.meta.url));

/** A small, quick version of examples/digits-5to9.yaml whose files live on hostPath volumes. */
export function digitsJob(name, { outDir, namespace = 'default', replicas = 2, epochs = 3, perClass = 10, extra = {}, workers = {}, training = {} }) {
  const out = join(outDir, name);
  return JSON.stringify({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name, namespace },
    spec: {
      model: { source: join(MODELS, 'digits-cnn-0to4.onnx'), head: { numClasses: 5 } },
      dataset: { builtin: 'mnist', digits: [5, 6, 7, 8, 9], maxExamplesPerClass: perClass },
      trainable: { freezeBelow: 'conv3' },
      optimizer: { learningRate: 0.01 },
      training: { epochs, batchSize: 10, seed: 0, ...training },
      workers: {
        replicas,
        volumes: [
          { name: 'models', hostPath: { path: MODELS, type: 'Directory' } },
          { name: 'out', hostPath: { path: out, type: 'DirectoryOrCreate' } },
        ],
        volumeMounts: [
          { name: 'models', mountPath: MODELS, readOnly: true },
          { name: 'out', mountPath: out },
        ],
        ...workers,
      },
      output: { path: out },
      ...extra,
    },
  });
}

