#!/usr/bin/env bash
# Render the gateway's nginx configuration and run nginx in the foreground, unprivileged paths only
# (`make dev` starts it; tests run it on ephemeral ports). Installs nginx when it is missing.
#
# Environment (defaults are `make dev`'s ports):
#   FTD_GATEWAY_PORT (8000), FTD_GATEWAY_ADDR (127.0.0.1), FTD_GATEWAY_DIR (.dev/gateway),
#   FTD_JOB_API_ADDR (127.0.0.1:8001), FTD_DATA_SERVICE_ADDR (127.0.0.1:8002),
#   FTD_REGISTRY_ADDR (127.0.0.1:8003), FTD_UI_ADDR (127.0.0.1:8004),
#   FTD_MODEL_SERVER_ADDR (127.0.0.1:8005), FTD_WEBHOOK_ADDR (127.0.0.1:8006),
#   DATA_SERVICE_MAX_UPLOAD_BYTES (2147483648, data-service's own limit),
#   JOB_API_MAX_BODY_BYTES (1048576, job-api's own limit).
# An address may be a comma-separated list (replicas): its upstream gets one `server` line each.
# With --render-only it writes the configuration, prints its path and exits.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="$ROOT/deploy/gateway/nginx.conf.template"

RUN_DIR=${FTD_GATEWAY_DIR:-$ROOT/.dev/gateway}
mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"
MAX_UPLOAD=${DATA_SERVICE_MAX_UPLOAD_BYTES:-2147483648}
# Room for the multipart framing around the file; data-service enforces the exact limit.
MAX_BODY=$((MAX_UPLOAD + 65536))
JOB_API_MAX_BODY=${JOB_API_MAX_BODY_BYTES:-1048576}

# "a,b" -> "a; server b": the template's `server @@X_ADDR@@;` then names every replica.
servers() { local list=${1// /}; echo "${list//,/; server }"; }

CONF="$RUN_DIR/nginx.conf"
sed -e "s|@@RUN_DIR@@|$RUN_DIR|g" \
  -e "s|@@LISTEN_ADDR@@|${FTD_GATEWAY_ADDR:-127.0.0.1}|g" \
  -e "s|@@LISTEN_PORT@@|${FTD_GATEWAY_PORT:-8000}|g" \
  -e "s|@@JOB_API_ADDR@@|$(servers "${FTD_JOB_API_ADDR:-127.0.0.1:8001}")|g" \
  -e "s|@@DATA_SERVICE_ADDR@@|$(servers "${FTD_DATA_SERVICE_ADDR:-127.0.0.1:8002}")|g" \
  -e "s|@@REGISTRY_ADDR@@|$(servers "${FTD_REGISTRY_ADDR:-127.0.0.1:8003}")|g" \
  -e "s|@@UI_ADDR@@|$(servers "${FTD_UI_ADDR:-127.0.0.1:8004}")|g" \
  -e "s|@@MODEL_SERVER_ADDR@@|$(servers "${FTD_MODEL_SERVER_ADDR:-127.0.0.1:8005}")|g" \
  -e "s|@@WEBHOOK_ADDR@@|$(servers "${FTD_WEBHOOK_ADDR:-127.0.0.1:8006}")|g" \
  -e "s|@@MAX_BODY_BYTES@@|$MAX_BODY|g" \
  -e "s|@@MAX_UPLOAD_BYTES@@|$MAX_UPLOAD|g" \
  -e "s|@@JOB_API_MAX_BODY_BYTES@@|$JOB_API_MAX_BODY|g" \
  "$TEMPLATE" >"$CONF"

if [ "${1:-}" = "--render-only" ]; then
  echo "$CONF"
  exit 0
fi

NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; }
if [ -z "$NGINX" ]; then
  echo "gateway: installing nginx" >&2
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi

"$NGINX" -t -q -p "$RUN_DIR" -c "$CONF" -g 'daemon off;'
exec "$NGINX" -p "$RUN_DIR" -c "$CONF" -g 'daemon off;'
