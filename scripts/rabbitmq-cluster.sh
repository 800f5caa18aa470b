#!/usr/bin/env bash
# A local three-node RabbitMQ cluster of the installed rabbitmq-server, beside the system one on
# 5672 (which it never touches): for trying failover and for tests/cluster/.
#
#   scripts/rabbitmq-cluster.sh start          start nodes 1-3, join 2 and 3 to 1, print the URLs
#   scripts/rabbitmq-cluster.sh urls           the comma-separated URL list (FTD_AMQP_URL's form)
#   scripts/rabbitmq-cluster.sh management-urls  each node's management API (with the listener)
#   scripts/rabbitmq-cluster.sh status         rabbitmqctl cluster_status, asked of the first node up
#   scripts/rabbitmq-cluster.sh stop           stop every node and remove the state folder
#   scripts/rabbitmq-cluster.sh start-node N   start node N again (it rejoins with its data)
#   scripts/rabbitmq-cluster.sh stop-node N    stop node N's Erlang VM cleanly (rabbitmqctl stop)
#   scripts/rabbitmq-cluster.sh kill-node N    SIGKILL node N's VM, as a crash would
#   scripts/rabbitmq-cluster.sh partition-node N  cut node N off from the other two (below)
#   scripts/rabbitmq-cluster.sh heal-node N    end node N's partition: the links come back
#   scripts/rabbitmq-cluster.sh ctl N ARGS...  rabbitmqctl ARGS against node N (stop_app, ...)
#
#   FTD_CLUSTER_DIR=/tmp/ftd-rabbitmq-cluster  state: each node's data, logs and pid file, and the
#                                              HOME holding the cluster's shared Erlang cookie
#   FTD_CLUSTER_NAME=ftd-c    node N is ${FTD_CLUSTER_NAME}N@localhost
#   FTD_CLUSTER_PORT=5681     node N takes AMQP port PORT+N-1 and distribution port PORT+N-1+20000
#   FTD_CLUSTER_TIMEOUT=120   seconds to wait for a node to boot
#   FTD_CLUSTER_MANAGEMENT_PORT (unset)  when set, each node runs the management plugin, node N's
#                             HTTP API on 127.0.0.1:PORT+N-1 (job-api makes workers' broker users
#                             there; queue depths); `management-urls` prints them
#   FTD_CLUSTER_PARTITION_HANDLING=pause_minority  the nodes' cluster_partition_handling (below)
#
# Plugins are off unless asked for (no management listener), so a node needs only its two ports;
# each takes about 100-150 MB. Nodes log in as `guest`, which RabbitMQ allows from loopback only.
#
# Partitions: the nodes share one host, so a partition cuts the links between them, not a network.
# `partition-node N` makes node N expect another cookie from the other two and drops its links to
# them: each side sees the other go down, and neither can connect again (the handshake fails both
# ways) until `heal-node N`. Clients still reach node N's port. The nodes run with
# `cluster_partition_handling = pause_minority`, as the Helm chart's RabbitmqCluster does: node N,
# alone of three, pauses (it closes its client connections and listeners) and starts again once it
# sees the majority.
set -euo pipefail

DIR=${FTD_CLUSTER_DIR:-${TMPDIR:-/tmp}/ftd-rabbitmq-cluster}
NAME=${FTD_CLUSTER_NAME:-ftd-c}
PORT=${FTD_CLUSTER_PORT:-5681}
TIMEOUT=${FTD_CLUSTER_TIMEOUT:-120}
MANAGEMENT_PORT=${FTD_CLUSTER_MANAGEMENT_PORT:-}
PARTITION_HANDLING=${FTD_CLUSTER_PARTITION_HANDLING:-pause_minority}
NODES=(1 2 3)
# The scripts themselves: /usr/sbin/rabbitmq* are wrappers that switch to the `rabbitmq` user when
# run as root, which could use neither this state folder nor its cookie.
BIN=/usr/lib/rabbitmq/bin
[[ -x $BIN/rabbitmq-server ]] || BIN=$(dirname "$(command -v rabbitmq-server || echo /usr/sbin/x)")
MARKER=.ftd-rabbitmq-cluster

log() { echo "rabbitmq-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

node_name() { echo "${NAME}$1@localhost"; }
amqp_port() { echo $((PORT + $1 - 1)); }
management_port() { echo $((MANAGEMENT_PORT + $1 - 1)); }
node_dir() { echo "$DIR/node$1"; }

# The environment of node N's server and of the CLI talking to it: nothing of the system node's
# (no /etc/rabbitmq/rabbitmq-env.conf, config or plugins), the cluster's cookie through HOME.
node_env() {
  local n=$1 d
  d=$(node_dir "$n")
  echo HOME="$DIR/home" \
    RABBITMQ_NODENAME="$(node_name "$n")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
    RABBITMQ_DIST_PORT=$(($(amqp_port "$n") + 20000)) \
    RABBITMQ_MNESIA_BASE="$d/mnesia" \
    RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/beam.pid" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config" \
    RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
}

ctl() {
  local n=$1
  shift
  # shellcheck disable=SC2046 # node_env prints NAME=value words without blanks
  env -u RABBITMQ_ERLANG_COOKIE $(node_env "$n") "$BIN/rabbitmqctl" -n "$(node_name "$n")" "$@"
}

check_node() {
  [[ $1 =~ ^[123]$ ]] || die "node must be 1, 2 or 3 (got '$1')"
}

prepare() {
  if [[ -e $DIR && ! -e $DIR/$MARKER ]]; then
    die "$DIR exists and is not a cluster folder of this script: set FTD_CLUSTER_DIR"
  fi
  mkdir -p "$DIR/home"
  touch "$DIR/$MARKER"
  if [[ ! -s $DIR/home/.erlang.cookie ]]; then
    # One cookie for the three nodes and the CLI; Erlang refuses a cookie others may read.
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/home/.erlang.cookie"
    chmod 400 "$DIR/home/.erlang.cookie"
  fi
  if [[ -n $MANAGEMENT_PORT ]]; then
    echo "[rabbitmq_management]." >"$DIR/enabled_plugins"
  else
    echo "[]." >"$DIR/enabled_plugins"
  fi
  : >"$DIR/rabbitmq-env.conf"
}

# Node N's own configuration: its management listener, when there is one.
node_config() {
  local n=$1 d
  d=$(node_dir "$n")
  mkdir -p "$d"
  echo "cluster_partition_handling = $PARTITION_HANDLING" >"$d/rabbitmq.conf"
  if [[ -n $MANAGEMENT_PORT ]]; then
    printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' \
      "$(management_port "$n")" >>"$d/rabbitmq.conf"
  fi
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_node() {
  local n=$1 d
  d=$(node_dir "$n")
  if ctl "$n" -q --timeout 5 ping >/dev/null 2>&1; then
    log "node $(node_name "$n") is running already"
    return
  fi
  port_taken "$(amqp_port "$n")" && die "port $(amqp_port "$n") is taken: set FTD_CLUSTER_PORT"
  mkdir -p "$d/log"
  node_config "$n"
  log "starting $(node_name "$n") on 127.0.0.1:$(amqp_port "$n") ..."
  # shellcheck disable=SC2046
  setsid env -u RABBITMQ_ERLANG_COOKIE $(node_env "$n") "$BIN/rabbitmq-server" \
    >>"$d/server.out" 2>&1 </dev/null &
}

await_node() {
  local n=$1 deadline=$((SECONDS + TIMEOUT))
  # await_startup gives up at once on a VM that has not registered with epmd yet: ping first.
  until ctl "$n" -q --timeout 5 ping >/dev/null 2>&1; do
    ((SECONDS < deadline)) ||
      die "$(node_name "$n") did not start within ${TIMEOUT}s: see $(node_dir "$n")/server.out"
    sleep 0.5
  done
  ctl "$n" -q --timeout "$TIMEOUT" await_startup >/dev/null ||
    die "$(node_name "$n") did not boot within ${TIMEOUT}s: see $(node_dir "$n")/server.out"
}

urls() {
  local n sep=""
  for n in "${NODES[@]}"; do
    printf '%samqp://guest:guest@127.0.0.1:%s/' "$sep" "$(amqp_port "$n")"
    sep=,
  done
  echo
}

management_urls() {
  [[ -n $MANAGEMENT_PORT ]] || die "no management listener: set FTD_CLUSTER_MANAGEMENT_PORT"
  local n sep=""
  for n in "${NODES[@]}"; do
    printf '%shttp://guest:guest@127.0.0.1:%s' "$sep" "$(management_port "$n")"
    sep=,
  done
  echo
}

cmd_start() {
  local n
  prepare
  for n in "${NODES[@]}"; do start_node "$n"; done
  for n in "${NODES[@]}"; do await_node "$n"; done
  for n in "${NODES[@]:1}"; do
    if ctl 1 -q cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name "$n")\""; then
      continue # joined already (a second `start`)
    fi
    log "joining $(node_name "$n") to $(node_name 1) ..."
    ctl "$n" -q stop_app >/dev/null
    ctl "$n" -q join_cluster "$(node_name 1)" >/dev/null
    ctl "$n" -q start_app >/dev/null
    await_node "$n"
  done
  log "cluster up: $(node_name 1), $(node_name 2), $(node_name 3)"
  urls
}

stop_node() {
  local n=$1 pid_file
  pid_file="$(node_dir "$n")/beam.pid"
  if ctl "$n" -q --timeout 5 ping >/dev/null 2>&1; then
    ctl "$n" -q --timeout 60 stop >/dev/null 2>&1 || true
  fi
  # A node that does not answer (or did not stop) is killed.
  if [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    kill -9 "$(cat "$pid_file")" 2>/dev/null || true
  fi
}

cmd_stop() {
  local n
  [[ -e $DIR/$MARKER ]] || {
    log "no cluster in $DIR"
    return
  }
  for n in "${NODES[@]}"; do stop_node "$n"; done
  rm -rf "$DIR"
  log "stopped; removed $DIR"
}

cmd_kill_node() {
  local n=$1 pid_file pid
  pid_file="$(node_dir "$n")/beam.pid"
  [[ -s $pid_file ]] || die "no pid file for node $n (is it running?)"
  pid=$(cat "$pid_file")
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  log "killed $(node_name "$n") (pid $pid)"
}

# The Erlang list of the nodes other than N, as quoted atoms: ['ftd-c1@localhost',...].
other_nodes() {
  local n=$1 m list=""
  for m in "${NODES[@]}"; do
    [[ $m == "$n" ]] || list+="${list:+,}'$(node_name "$m")'"
  done
  echo "[$list]"
}

cmd_partition_node() {
  local n=$1
  # A per-node cookie applies to that node's links in both directions; the CLI's own link (its
  # node is none of these) keeps the cluster's cookie, so node N can still be asked and healed.
  ctl "$n" -q --timeout 30 eval "Others = $(other_nodes "$n"),
    [erlang:set_cookie(O, 'ftd_partitioned') || O <- Others],
    [erlang:disconnect_node(O) || O <- Others], ok." >/dev/null
  log "partitioned $(node_name "$n") from the other nodes"
}

cmd_heal_node() {
  local n=$1
  ctl "$n" -q --timeout 30 eval "Others = $(other_nodes "$n"),
    [erlang:set_cookie(O, erlang:get_cookie()) || O <- Others],
    [net_kernel:connect_node(O) || O <- Others], ok." >/dev/null
  log "healed $(node_name "$n"): its links to the other nodes are allowed again"
}

cmd_status() {
  local n
  for n in "${NODES[@]}"; do
    if ctl "$n" -q --timeout 5 ping >/dev/null 2>&1; then
      ctl "$n" cluster_status
      return
    fi
  done
  die "no node answers"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
urls) urls ;;
management-urls) management_urls ;;
status) cmd_status ;;
start-node)
  check_node "${2:-}"
  start_node "$2"
  await_node "$2"
  ;;
stop-node)
  check_node "${2:-}"
  stop_node "$2"
  ;;
kill-node)
  check_node "${2:-}"
  cmd_kill_node "$2"
  ;;
partition-node)
  check_node "${2:-}"
  cmd_partition_node "$2"
  ;;
heal-node)
  check_node "${2:-}"
  cmd_heal_node "$2"
  ;;
ctl)
  check_node "${2:-}"
  n=$2
  shift 2
  ctl "$n" "$@"
  ;;
*)
  sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
