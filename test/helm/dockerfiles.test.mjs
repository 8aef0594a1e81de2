// The controller and worker Dockerfiles (deploy/docker), checked without a container engine
// (none exists here, so the images cannot be built in this test): every COPY source exists in
// the repository and is not filtered out by the Dockerfile's own .dockerignore, every npm
// workspace manifest reaches `npm ci`, the bases, users, entrypoints and the onnxruntime-node
// install mode are the intended ones, and the chart's values name the images these build.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { dockerignoreMatcher, parseDockerfile } from './dockerfile.mjs';
import { CHART, ROOT } from './helm.mjs';

const DOCKER = join(ROOT, 'deploy/docker');
const IMAGES = {
  controller: { file: 'controller.Dockerfile', repository: 'ghcr.io/finetune-operator/controller', values: 'controller' },
  worker: { file: 'worker.Dockerfile', repository: 'ghcr.io/finetune-operator/worker', values: 'workers' },
};

function load(file) {
  const text = readFileSync(join(DOCKER, file), 'utf8');
  const ignore = readFileSync(join(DOCKER, `${file}.dockerignore`), 'utf8');
  return { text, steps: parseDockerfile(text), ignored: dockerignoreMatcher(ignore) };
}

/** The instructions of the last stage (the image that ships). */
function finalStage(steps) {
  const last = steps.map((s) => s.instruction).lastIndexOf('FROM');
  return steps.slice(last);
}

/** Context paths the build copies in (COPY/ADD without --from). */
function contextSources(steps) {
  return steps
    .filter((s) => (s.instruction === 'COPY' || s.instruction === 'ADD') && !s.flags.some((f) => f.startsWith('--from=')))
    .flatMap((s) => s.args.slice(0, -1));
}

for (const image of Object.values(IMAGES)) {
  test(`${image.file}: every COPY source exists and survives the .dockerignore`, () => {
    const { steps, ignored } = load(image.file);
    const sources = contextSources(steps);
    assert.ok(sources.length > 0);
    for (const src of sources) {
      assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: not in the repository`);
      assert.ok(!ignored(src), `COPY ${src}: excluded by ${image.file}.dockerignore`);
    }
    // The sources that must reach the build, and the host outputs that must not.
    for (const kept of ['package-lock.json', 'packages/cli/src/main.ts', 'packages/proto/proto']) assert.ok(!ignored(kept), kept);
    for (const dropped of ['node_modules', 'packages/api/node_modules/yaml', 'packages/cli/dist', 'packages/proto/src/gen', '.git']) {
      assert.ok(ignored(dropped), `${dropped} should not be sent to the build`);
    }
  });

  test(`${image.file}: npm ci sees every workspace manifest and the lockfile`, () => {
    const { steps } = load(image.file);
    const sources = contextSources(steps).map((s) => s.replace(/\/+$/, ''));
    const workspaces = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).workspaces;
    for (const ws of ['.', ...workspaces]) {
      const manifest = ws === '.' ? 'package.json' : `${ws}/package.json`;
      assert.ok(sources.some((s) => manifest === s || manifest.startsWith(`${s}/`)), `${manifest} is copied before npm ci`);
    }
    const ci = steps.findIndex((s) => s.instruction === 'RUN' && /\bnpm ci\b/.test(s.line));
    const lock = steps.findIndex((s) => s.instruction === 'COPY' && s.args.includes('package-lock.json'));
    assert.ok(lock >= 0 && ci > lock, 'the lockfile is copied before npm ci');
  });

  test(`${image.file}: runs as 65532 with ftjob as the entrypoint, and is the image values.yaml names`, () => {
    const { text, steps } = load(image.file);
    const shipped = finalStage(steps);
    assert.deepEqual(shipped.filter((s) => s.instruction === 'USER').map((s) => s.args[0]), ['65532:65532']);
    const entrypoint = shipped.find((s) => s.instruction === 'ENTRYPOINT');
    assert.deepEqual(entrypoint && entrypoint.args, ['ftjob']);
    assert.ok(entrypoint.json, 'exec form, so signals reach node');
    assert.match(shipped.filter((s) => s.instruction === 'ENV').map((s) => s.line).join('\n'), /PATH=\/app\/node_modules\/\.bin:/);
    // ftjob is on that PATH because the root package depends on the CLI that declares the bin.
    const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const cli = JSON.parse(readFileSync(join(ROOT, 'packages/cli/package.json'), 'utf8'));
    assert.ok(root.dependencies[cli.name], `the root package depends on ${cli.name}`);
    assert.equal(cli.bin.ftjob, 'bin/ftjob.js');
    // The chart's default image is the one this file says it builds.
    const values = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
    assert.equal(values[image.values].image.repository, image.repository);
    assert.ok(text.includes(`-t ${image.repository}:`), `${image.file} documents how to build ${image.repository}`);
  });
}

test('controller.Dockerfile: node:20-slim, multi-stage, npm ci with the CUDA download skipped', () => {
  const { steps } = load(IMAGES.controller.file);
  const froms = steps.filter((s) => s.instruction === 'FROM').map((s) => s.args[0]);
  assert.deepEqual(froms, ['node:20-slim', 'node:20-slim']);
  const build = steps.slice(0, steps.map((s) => s.instruction).lastIndexOf('FROM'));
  assert.match(build.filter((s) => s.instruction === 'ENV').map((s) => s.line).join('\n'), /ONNXRUNTIME_NODE_INSTALL=skip/);
  assert.ok(build.some((s) => s.instruction === 'RUN' && /\bnpm ci\b/.test(s.line)));
  assert.ok(finalStage(steps).some((s) => s.instruction === 'COPY' && s.flags.includes('--from=build')));
});

test('worker.Dockerfile: CUDA 12 + cuDNN runtime base, Node 20, npm ci installs onnxruntime-node\'s CUDA provider', () => {
  const { steps } = load(IMAGES.worker.file);
  const shippedBase = finalStage(steps)[0].args[0];
  assert.match(shippedBase, /^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/);
  assert.ok(steps.some((s) => s.instruction === 'FROM' && s.args[0] === 'node:20-slim'), 'Node 20 comes from the official image');
  assert.ok(finalStage(steps).some((s) => s.instruction === 'COPY' && s.args[0] === '/usr/local/bin/node'));
  const env = steps.filter((s) => s.instruction === 'ENV').map((s) => s.line).join('\n');
  assert.doesNotMatch(env, /ONNXRUNTIME_NODE_INSTALL=skip/);
  assert.match(env, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
  const ci = steps.find((s) => s.instruction === 'RUN' && /\bnpm ci\b/.test(s.line));
  assert.ok(ci, 'npm ci');
  // The build fails when the provider did not arrive, rather than shipping a CPU-only worker.
  assert.match(ci.line, /test -f \S*libonnxruntime_providers_cuda\.so/);
  assert.match(ci.line, /onnxruntime-node\/script\/install\.js/);
});
