# syntax=docker/dockerfile:1
# The controller image (ghcr.io/finetune-operator/controller): `ftjob controller`, as the Helm
# chart runs it. Build from the repository root:
#   docker build -f deploy/docker/controller.Dockerfile -t ghcr.io/finetune-operator/controller:0.1.0 .
# (controller.Dockerfile.dockerignore beside this file keeps host builds and node_modules out.)
ARG NODE_IMAGE=node:20-slim

# ---- build: install and compile every workspace, then drop the dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The controller never runs a model: onnxruntime-node's CUDA provider download is skipped.
ENV CI=true NX_DAEMON=false NX_NO_CLOUD=true ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json nx.json tsconfig.base.json ./
COPY packages/ packages/
# npm ci needs every workspace's manifest, the test workspace's too.
COPY test/package.json test/
# `npm ci` runs the root prepare script, which builds all packages (nx run-many -t build).
# onnxruntime-node ships macOS and Windows binaries too (~220 MB): not needed on Linux.
RUN npm ci --no-audit --no-fund \
 && test -f packages/cli/dist/main.js \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf .nx packages/*/src node_modules/onnxruntime-node/bin/napi-v6/darwin node_modules/onnxruntime-node/bin/napi-v6/win32

# ---- runtime: the compiled packages and production node_modules, read-only, non-root ----
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    PATH=/app/node_modules/.bin:$PATH \
    HOME=/tmp
WORKDIR /app
COPY --from=build /app /app
# 65532: the conventional "nonroot" uid; the chart also sets runAsUser/runAsNonRoot.
USER 65532:65532
ENTRYPOINT ["ftjob"]
CMD ["controller", "--help"]
