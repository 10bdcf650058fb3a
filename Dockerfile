# The gateway on Bun. Build: docker build -t grpc-kafka-gateway .
# Run:   docker run -v "$PWD/zilla.yaml:/etc/zilla/zilla.yaml:ro" -p 7151:7151 -p 7190:7190 grpc-kafka-gateway

# Production dependencies come from npm in a Node stage because package-lock.json is the
# project's only lockfile: `bun install --frozen-lockfile` reads only bun.lock, and
# `bun install --production` without one would resolve versions anew. Every production
# dependency is plain JavaScript, so the node_modules built here runs unchanged under Bun.
FROM node:20-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM oven/bun:1.4-slim
WORKDIR /app
ENV NODE_ENV=production
# Bun's allocator hands back pages that stayed empty for a second, and never the free blocks of
# pages still in use (docs/limits.md, "Memory and the allocator"): its defaults (10 ms, and
# discarding such blocks in the background) cost a third of the gateway's calls/s in page faults.
ENV MIMALLOC_PURGE_DELAY=1000 MIMALLOC_PURGE_HOLES=0
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
# gen/ is the committed buf-generated code: every service and method comes from it.
COPY gen ./gen
COPY src ./src
# The no-argument command runs the bundled example topology.
COPY examples ./examples
# Files stay root-owned: the gateway's user can read its code but not change it.
USER bun
EXPOSE 7151 7153 7190
# The image has no curl; bun fetches /readyz on the HTTP/1.1 ops port (a refused connection
# throws, which also exits non-zero).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bun", "-e", "const r = await fetch('http://127.0.0.1:7190/readyz'); process.exit(r.ok ? 0 : 1)"]
ENTRYPOINT ["bun", "src/cli.ts"]
CMD ["start", "--config", "/etc/zilla/zilla.yaml"]
