# syntax=docker/dockerfile:1
# The web UI: the SvelteKit single-page app built to static files, served by nginx on :8004 (the
# gateway proxies `/` here). Build context: the repository root (the UI reads
# docs/contracts/hyperparameters.schema.json):
#   docker build -f deploy/docker/ui.Dockerfile .
# NODE_IMAGE and NGINX_IMAGE are the two stages' bases (official images by default;
# scripts/compose-test.sh builds local ones where no image can be pulled).
ARG NODE_IMAGE=node:22-bookworm-slim
ARG NGINX_IMAGE=nginx:1.27-alpine
FROM ${NODE_IMAGE} AS build
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY docs/contracts /src/docs/contracts
COPY frontend ./
RUN npm run build

FROM ${NGINX_IMAGE}
COPY deploy/docker/ui-nginx.conf /etc/nginx/conf.d/default.conf
COPY --from=build /src/frontend/build /usr/share/nginx/html
EXPOSE 8004
