# syntax=docker/dockerfile:1
# The worker image (ghcr.io/finetune-operator/worker): `ftjob worker` on a CUDA 12 + cuDNN 9
# runtime, with onnxruntime-node's CUDA execution provider installed. Build from the
# repository root (needs the network: npm registry and the NuGet feed of the CUDA provider):
#   docker build -f deploy/docker/worker.Dockerfile -t ghcr.io/finetune-operator/worker:0.1.0 .
ARG NODE_IMAGE=node:20-slim
# onnxruntime-node 1.30's CUDA provider is built for CUDA 12.x and cuDNN 9.x.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- build: npm ci WITHOUT ONNXRUNTIME_NODE_INSTALL=skip, so the CUDA provider is fetched ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CI=true NX_DAEMON=false NX_NO_CLOUD=true ONNXRUNTIME_NODE_INSTALL=cuda12
COPY package.json package-lock.json nx.json tsconfig.base.json ./
COPY packages/ packages/
COPY test/package.json test/
# onnxruntime-node ships macOS and Windows binaries too (~220 MB): not needed on Linux.
# npm 11 may skip onnxruntime-node's install script (the root allowScripts denies it for
# developers' machines); run it explicitly when its files are missing, then insist on them.
ARG ORT_BIN=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
RUN npm ci --no-audit --no-fund \
 && test -f packages/cli/dist/main.js \
 && (test -f ${ORT_BIN}/libonnxruntime_providers_cuda.so || node node_modules/onnxruntime-node/script/install.js) \
 && test -f ${ORT_BIN}/libonnxruntime_providers_cuda.so \
 && test -f ${ORT_BIN}/libonnxruntime_providers_shared.so \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf .nx packages/*/src node_modules/onnxruntime-node/bin/napi-v6/darwin node_modules/onnxruntime-node/bin/napi-v6/win32

# ---- runtime: CUDA base + Node 20 (the official binary, copied from the Node image) ----
FROM ${NODE_IMAGE} AS node
FROM ${CUDA_IMAGE}
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    PATH=/app/node_modules/.bin:$PATH \
    HOME=/tmp
COPY --from=build /app /app
# The example jobs' models, so `kubectl apply -f examples/digits-5to9.yaml` works as is;
# relative paths in a job resolve against the working directory.
COPY examples/models/ /workspace/examples/models/
RUN mkdir -p /workspace/out && chown 65532:65532 /workspace/out && ftjob --version && ftjob-worker --help > /dev/null
WORKDIR /workspace
USER 65532:65532
ENTRYPOINT ["ftjob"]
CMD ["worker", "--help"]
