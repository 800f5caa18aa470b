#!/usr/bin/env bash
# Container entrypoint for RabbitMQ in docker-compose.yml: starts the broker ("$@"), then sets the
# passwords of the users that definitions.json creates, from the environment:
#
#   FTD_BROKER_ADMIN_USER / FTD_BROKER_ADMIN_PASSWORD   administrator (management UI and API,
#                                                       :15672; job-api makes workers' users with it)
#   FTD_BROKER_JOB_API_PASSWORD                         user job-api
#   FTD_BROKER_DATA_SERVICE_PASSWORD                    user data-service
#   FTD_BROKER_REGISTRY_SERVICE_PASSWORD                user registry-service
#   FTD_BROKER_MODEL_SERVER_PASSWORD                    user model-server
#   FTD_BROKER_WEBHOOK_SERVICE_PASSWORD                 user webhook-service
#
# A role whose variable is unset has no password and cannot log in. Loading definitions.json at
# boot resets the users to that state, so this runs on every start. (RABBITMQ_DEFAULT_USER would not
# do for the admin: RabbitMQ creates no default user when it loads definitions at boot.)
# The compose healthcheck passes only once the passwords are set.
set -euo pipefail

READY=/tmp/ftd-rabbitmq-ready
VHOST=/finetune
rm -f "$READY"

"$@" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server"; exit $?' TERM INT

# The server makes the Erlang cookie on first boot; rabbitmqctl must not race it to that.
cookie=${HOME:-/var/lib/rabbitmq}/.erlang.cookie
deadline=$((SECONDS + 120))
until [ -s "$cookie" ] && rabbitmqctl -q --timeout 5 await_startup >/dev/null 2>&1; do
  if ! kill -0 "$server" 2>/dev/null || ((SECONDS >= deadline)); then
    echo "ftd-entrypoint: rabbitmq did not start" >&2
    exit 1
  fi
  sleep 1
done

set_password() {
  local user=$1 password=$2
  [ -n "$password" ] || return 0
  rabbitmqctl -q change_password "$user" "$password" >/dev/null
  echo "ftd-entrypoint: password set for $user" >&2
}

if [ -n "${FTD_BROKER_ADMIN_PASSWORD:-}" ]; then
  admin=${FTD_BROKER_ADMIN_USER:-admin}
  rabbitmqctl -q add_user "$admin" "$FTD_BROKER_ADMIN_PASSWORD" >/dev/null 2>&1 ||
    rabbitmqctl -q change_password "$admin" "$FTD_BROKER_ADMIN_PASSWORD" >/dev/null
  rabbitmqctl -q set_user_tags "$admin" administrator >/dev/null
  rabbitmqctl -q set_permissions -p "$VHOST" "$admin" '.*' '.*' '.*' >/dev/null
  echo "ftd-entrypoint: administrator $admin ready" >&2
fi
set_password job-api "${FTD_BROKER_JOB_API_PASSWORD:-}"
set_password data-service "${FTD_BROKER_DATA_SERVICE_PASSWORD:-}"
set_password registry-service "${FTD_BROKER_REGISTRY_SERVICE_PASSWORD:-}"
set_password model-server "${FTD_BROKER_MODEL_SERVER_PASSWORD:-}"
set_password webhook-service "${FTD_BROKER_WEBHOOK_SERVICE_PASSWORD:-}"

touch "$READY"
wait "$server"
