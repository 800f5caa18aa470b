#!/usr/bin/env bash
# The CPU worker of `make dev`, supervised: it is enrolled once (the token kept in
# .dev/worker-token, mode 0600, and reused while job-api still knows it), then run; if the process
# ever ends other than by a stop, it starts again after a back-off, enrolling anew when its
# credential was refused (exit 3: revoked, or the database was reset).
#
#   FTD_DEV_WORKER_NAME (cpu-<host>)   the name shown on the Workers page
#   FTD_API_URL (http://localhost:8000) the platform the worker asks who it is
# Other arguments are passed to `ftd-worker run`.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOKEN_FILE=${FTD_DEV_WORKER_TOKEN_FILE:-.dev/worker-token}
NAME=${FTD_DEV_WORKER_NAME:-cpu-$(hostname -s 2>/dev/null || echo local)}
export FTD_API_URL=${FTD_API_URL:-http://localhost:8000}
UV=${UV:-uv}

log() { echo "dev-worker: $*" >&2; }

child=
stopping=0
on_stop() {
  stopping=1
  [ -z "$child" ] || kill -TERM "$child" 2>/dev/null
}
trap on_stop TERM INT

delay=1
while ((stopping == 0)); do
  # shellcheck disable=SC2086  # UV may be two words ("python3 -m uv")
  if ! $UV run --quiet job-api workers enroll --name "$NAME" --token-file "$TOKEN_FILE"; then
    log "enrolling failed; trying again in ${delay}s"
  else
    FTD_WORKER_TOKEN=$(cat "$TOKEN_FILE")
    export FTD_WORKER_TOKEN
    # shellcheck disable=SC2086
    $UV run ftd-worker run "$@" &
    child=$!
    wait "$child"
    code=$?
    # `wait` returns early when a signal arrives: wait for the worker's own exit.
    while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done
    child=
    if ((stopping == 1)) || ((code == 0)); then
      exit 0
    fi
    if ((code == 3)); then
      log "the platform refused the worker's credential; enrolling it again"
      rm -f "$TOKEN_FILE"
      delay=1
      continue
    fi
    log "the worker exited with $code; starting it again in ${delay}s"
  fi
  sleep "$delay"
  delay=$((delay < 30 ? delay * 2 : 60))
done
