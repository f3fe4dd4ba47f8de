# dropout-serve: multi-stage build, production dependencies only, non-root, healthcheck.
# onnxruntime-node needs glibc: Debian bookworm-slim, not Alpine.

# --- build: all dependencies, TypeScript → dist/
FROM node:24-bookworm-slim AS build
WORKDIR /app
# .npmrc first: ignore-scripts=true, so no dependency's install script runs (onnxruntime-node's would
# download CUDA binaries); npm >= 11.16 also reads package.json's allowScripts, which denies them
COPY .npmrc package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- production dependencies, without the onnxruntime binaries of other platforms (only node_modules leaves
#     this stage, so npm's cache needs no cleaning; `npm cache clean --force` would also wipe a cache mounted
#     from the host, as ../shared/tools/container-check.sh mounts ~/.npm)
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY .npmrc package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && arch="$(node -p process.arch)" \
 && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin/napi-v6/linux -mindepth 1 -maxdepth 1 ! -name "$arch" -exec rm -rf {} +

# --- runtime
FROM node:24-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 MODELS_DIR=/app/models
# glibc: blocks of 1 MiB and more get their own mapping, returned on free (without a fixed threshold glibc
# raises it after onnxruntime frees its first large blocks, later model loads land in the main heap and
# its fragments are never returned), and two malloc arenas instead of one per thread (onnxruntime's
# threads). `npm run soak -- reload`, RSS after ten reloads and three unload/load cycles under load:
# +28% with glibc's defaults, +10.1% with the threshold alone, +6.2% with both (README, Operating).
ENV MALLOC_MMAP_THRESHOLD_=1048576 MALLOC_ARENA_MAX=2
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY models ./models
COPY openapi ./openapi
# the image's files stay root-owned and read-only for the server, which runs as the unprivileged node user
USER node
EXPOSE 8080
# no curl in the slim image: Node's own fetch
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# exec form: node is PID 1's child-free main process and receives SIGTERM directly
CMD ["node", "--max-semi-space-size=4", "dist/server/server.js"]
