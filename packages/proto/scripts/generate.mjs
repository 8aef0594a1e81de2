// Generates src/gen/ (TypeScript for @grpc/grpc-js, by ts-proto) from proto/**/*.proto.
// Runs offline: the `protoc` npm package ships the protoc binaries in its tarball (no install
// script), and ts-proto is a protoc plugin run by node. `npm run build` runs this first.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));
const protoDir = join(packageDir, 'proto');
const outDir = join(packageDir, 'src', 'gen');
const require = createRequire(import.meta.url);
const protocCli = join(dirname(require.resolve('protoc/package.json')), 'protoc.cjs');
const tsProtoDir = dirname(require.resolve('ts-proto/package.json'));
// protoc runs the plugin as an executable: the package's script (#!/usr/bin/env node), or on
// Windows the .cmd shim npm puts in node_modules/.bin.
const plugin = process.platform === 'win32'
  ? join(dirname(tsProtoDir), '.bin', 'protoc-gen-ts_proto.cmd')
  : join(tsProtoDir, 'protoc-gen-ts_proto');

const options = [
  'outputServices=grpc-js',
  'env=node',
  'esModuleInterop=true',
  'importSuffix=.js',
  'forceLong=number',
  'useOptionals=none',
  'outputTypeRegistry=false',
];

function protoFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return protoFiles(path);
    return entry.name.endsWith('.proto') ? [relative(protoDir, path)] : [];
  });
}

const files = protoFiles(protoDir).sort();
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const args = [
  protocCli,
  `--plugin=protoc-gen-ts_proto=${plugin}`,
  `--ts_proto_out=${outDir}`,
  `--ts_proto_opt=${options.join(',')}`,
  `--proto_path=${protoDir}`,
  ...files,
];
const result = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: packageDir });
if (result.error) throw result.error;
if (result.status !== 0) {
  console.error(`protoc failed (exit ${result.status}) generating ${files.join(', ')}`);
  process.exit(result.status ?? 1);
}
console.log(`generated ${relative(packageDir, outDir)}/ from ${files.join(', ')}`);
