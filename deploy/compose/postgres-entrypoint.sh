#!/usr/bin/env bash
# Entrypoint of deploy/compose/postgres.Dockerfile: the official postgres image's first-start
# behaviour that docker-compose.yml relies on (POSTGRES_PASSWORD, password logins from the network).
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  exec runuser -u postgres -- bash "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  echo "postgres-entrypoint: initialised $PGDATA" >&2
fi
exec "$@" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql
