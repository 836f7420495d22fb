#!/usr/bin/env bash
# A Ray cluster on this machine: a head and N worker nodes, each its own `ray start --block`
# process (own raylet, object store, ports and temp dir), everything listening on 127.0.0.1 only,
# Ray's token authentication on. Linux (ps, /proc).
#
#   cluster/local.sh up N [--cpus C] [--head-cpus C] [--base-port P] [--object-store-mb M]
#   cluster/local.sh status
#   cluster/local.sh down [--keep-temp]
#   (each takes --state DIR: where the cluster's address, pids and node list are kept)
#
# Environment, the flags' defaults: ROBUSTUNE_LOCAL_CLUSTER (state folder,
# ~/.cache/robustune/local-cluster), ROBUSTUNE_LOCAL_CLUSTER_CPUS (1 per worker node),
# ROBUSTUNE_LOCAL_CLUSTER_HEAD_CPUS (0: trials run on the worker nodes), ROBUSTUNE_LOCAL_CLUSTER_PORT
# (24000), ROBUSTUNE_LOCAL_CLUSTER_OBJECT_STORE_MB (200 per node), ROBUSTUNE_LOCAL_CLUSTER_TIMEOUT
# (120 s for the nodes to start), ROBUSTUNE_PYTHON (the venv's python).
#
# Node i (0 = head) owns the 100 ports from base + 100 i: +0 GCS, +1 dashboard, +2 Ray Client,
# +9 autoscaler metrics, +10 dashboard metrics (head only; Ray's fixed 44217 and 44227 otherwise),
# +3 node manager, +4 object manager, +5 metrics export, +6 dashboard agent (http), +7 dashboard
# agent (grpc), +8 runtime-env agent, +20..+99 its worker processes.
#
# Why a small Python launcher instead of the `ray` command: `ray start --node-ip-address=127.0.0.1`
# (and `--address=127.0.0.1:port`) is rewritten by Ray to this host's primary interface address
# (ray._private.services.resolve_ip_for_localhost), and Ray's gRPC servers then listen on every
# interface. The launcher keeps 127.0.0.1 as given; with the node's own address 127.0.0.1 the GCS,
# raylets, agents and workers all bind to loopback. A driver needs the same on its side:
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray take 127.0.0.1 as this machine's address (that is
# all the variable does on Linux), and RAY_AUTH_MODE=token sends the token (~/.ray/auth_token).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${ROBUSTUNE_PYTHON:-$ROOT/.venv/bin/python}
PROG="cluster/local.sh"
STATE=${ROBUSTUNE_LOCAL_CLUSTER:-$HOME/.cache/robustune/local-cluster}
CPUS=${ROBUSTUNE_LOCAL_CLUSTER_CPUS:-1}
HEAD_CPUS=${ROBUSTUNE_LOCAL_CLUSTER_HEAD_CPUS:-0}
BASE=${ROBUSTUNE_LOCAL_CLUSTER_PORT:-24000}
STORE_MB=${ROBUSTUNE_LOCAL_CLUSTER_OBJECT_STORE_MB:-200}
TIMEOUT=${ROBUSTUNE_LOCAL_CLUSTER_TIMEOUT:-120}
MAX_WORKERS=32
PORTS_PER_NODE=100
DRIVER_ENV="RAY_AUTH_MODE=token RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0"

# os.setsid(): the node's processes form one session, whose id is the launcher's pid (how `down`
# finds them all); then `ray start` with 127.0.0.1 left as given (see above).
LAUNCHER='import os, sys
os.setsid()
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host
from ray.scripts.scripts import main
sys.argv[0] = "ray"
sys.exit(main())'

die() { echo "$PROG: error: $1" >&2; exit "${2:-1}"; }
usage() { die "$1 (usage: $PROG up N [--cpus C] [--head-cpus C] [--base-port P] [--object-store-mb M] | status | down [--keep-temp], each with optional --state DIR)" 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# --- state -------------------------------------------------------------------------------------
# $STATE/address (host:port of the GCS), $STATE/dashboard, $STATE/tmp (the nodes' temp root),
# $STATE/nodes: one line per node, "name pid tempdir baseport cpus" (pid = the node's session id),
# $STATE/logs/<name>.log: each `ray start`'s own output.

read_nodes() { [[ -f $STATE/nodes ]] && cat "$STATE/nodes" || true; }

leader_alive() {  # pid tempdir: the node's `ray start` is running (not a recycled pid, not a zombie)
  local args
  args=$(ps -ww -o stat=,args= -p "$1" 2>/dev/null) || return 1  # -ww: a long --temp-dir is never cut
  [[ $args != Z* && " $args " == *" --temp-dir=$2 "* ]]
}

members() {  # sid dir: pids of the node's session, plus any process of the venv using the folder dir
  ps -eww -o pid=,sid=,stat=,args= | SID=$1 TMPROOT=$2/ PREFIX=$PREFIX awk '
    $3 ~ /^Z/ { next }
    $2 == ENVIRON["SID"] { print $1; next }
    index($0, ENVIRON["TMPROOT"]) && index($4, ENVIRON["PREFIX"]) == 1 { print $1 }'
}

all_members() {  # every live process of every node of the cluster in $STATE
  local tmproot name pid tmp rest
  tmproot=$(cat "$STATE/tmp" 2>/dev/null || echo /nonexistent)
  while read -r name pid tmp rest; do
    members "$pid" "$tmproot"
  done < <(read_nodes) | sort -un
}

lock_state() {
  mkdir -p "$STATE/logs"
  exec 9>"$STATE/lock"
  command -v flock >/dev/null && { flock -n 9 || die "another $PROG is working on $STATE"; }
  return 0
}

# --- down --------------------------------------------------------------------------------------
wait_gone() {  # seconds: wait until no process of the cluster is left
  local deadline=$((SECONDS + $1))
  while [[ -n $(all_members) ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

stop_all() {  # stop exactly the processes of the nodes in $STATE, workers first; 0 when none is left
  local name pid tmp rest left
  [[ -f $STATE/nodes ]] || return 0
  while read -r name pid tmp rest; do  # each `ray start --block` stops its node's processes on SIGTERM
    [[ $name != head ]] && leader_alive "$pid" "$tmp" && kill -TERM "$pid" 2>/dev/null || true
  done < <(read_nodes)
  sleep 0.5
  while read -r name pid tmp rest; do
    [[ $name == head ]] && leader_alive "$pid" "$tmp" && kill -TERM "$pid" 2>/dev/null || true
  done < <(read_nodes)
  wait_gone 30 && return 0
  left=$(all_members)
  # shellcheck disable=SC2086  # one pid per word
  [[ -n $left ]] && kill -TERM $left 2>/dev/null || true
  wait_gone 5 && return 0
  left=$(all_members)
  # shellcheck disable=SC2086
  [[ -n $left ]] && kill -KILL $left 2>/dev/null || true
  wait_gone 10
}

forget() {  # remove the state of a stopped cluster (its `ray start` logs stay in $STATE/logs)
  local tmproot
  tmproot=$(cat "$STATE/tmp" 2>/dev/null || true)
  if [[ -n $tmproot && -d $tmproot ]]; then
    if [[ $KEEP_TEMP == 0 ]]; then rm -rf -- "$tmproot"; else echo "the nodes' temp dirs and Ray logs: $tmproot"; fi
  fi
  rm -f -- "$STATE/nodes" "$STATE/address" "$STATE/dashboard" "$STATE/tmp"
}

cmd_down() {
  [[ -f $STATE/nodes ]] || { echo "no local cluster in $STATE"; return 0; }
  lock_state
  local started
  started=$(all_members | wc -l)
  if ! stop_all; then
    die "processes still running after SIGKILL: $(all_members | tr '\n' ' ')(state kept in $STATE)"
  fi
  echo "stopped the local cluster at $(cat "$STATE/address" 2>/dev/null): $(wc -l < "$STATE/nodes") nodes," \
       "$started processes, none left"
  forget
}

# --- up ----------------------------------------------------------------------------------------
check_ports() {  # first last: one line and exit 1 when a port of the range is taken or ephemeral
  local low high
  read -r low high < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { low=32768; high=60999; }
  if ((BASE < 1024 || $2 > 65535)); then
    die "ports $1-$2 are outside 1024-65535: choose another --base-port" 2
  fi
  if (($2 >= low && $1 <= high)); then
    die "ports $1-$2 overlap this machine's ephemeral port range $low-$high: choose --base-port P with P + $((PORTS_PER_NODE * (N + 1))) <= $low" 2
  fi
  "$PY" - "$1" "$2" <<'EOF' || exit 1
import socket, sys
first, last = int(sys.argv[1]), int(sys.argv[2])
for port in range(first, last + 1):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no collision, a listener is
    try:
        s.bind(("127.0.0.1", port))
    except OSError as exc:
        sys.exit(f"cluster/local.sh: error: port {port} on 127.0.0.1 is in use ({exc.strerror}); the cluster "
                 f"needs {first}-{last}: choose another --base-port or ROBUSTUNE_LOCAL_CLUSTER_PORT")
    finally:
        s.close()
EOF
}

start_node() {  # index name cpus: start one node's `ray start --block` in its own session
  local i=$1 name=$2 cpus=$3 p tmp args
  p=$((BASE + PORTS_PER_NODE * i))
  tmp=$TMPROOT/n$(printf %02d "$i")
  args=(start --block --disable-usage-stats --node-ip-address=127.0.0.1 --temp-dir="$tmp"
        --num-cpus="$cpus" --num-gpus=0 --object-store-memory=$((STORE_MB * 1024 * 1024))
        --node-manager-port=$((p + 3)) --object-manager-port=$((p + 4)) --metrics-export-port=$((p + 5))
        --dashboard-agent-listen-port=$((p + 6)) --dashboard-agent-grpc-port=$((p + 7))
        --runtime-env-agent-port=$((p + 8)) --min-worker-port=$((p + 20)) --max-worker-port=$((p + 99)))
  if ((i == 0)); then
    args+=(--head --port="$p" --dashboard-host=127.0.0.1 --dashboard-port=$((p + 1))
           --ray-client-server-port=$((p + 2)))
  else
    args+=(--address="127.0.0.1:$BASE")
  fi
  # RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0: on SIGTERM a node stops at once instead of draining
  # for up to 30 s. GLOO_SOCKET_IFNAME=lo: gloo groups of data-parallel trials stay on loopback too.
  (exec 9>&-; cd "$ROOT" && RAY_AUTH_MODE=token RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 GLOO_SOCKET_IFNAME=lo \
     AUTOSCALER_METRIC_PORT=$((BASE + 9)) DASHBOARD_METRIC_PORT=$((BASE + 10)) \
     exec "$PY" -c "$LAUNCHER" "${args[@]}" </dev/null >"$STATE/logs/$name.log" 2>&1) &
  echo "$name $! $tmp $p $cpus" >> "$STATE/nodes"
}

wait_started() {  # name pid tmp: until its log says the runtime started; 1 when it died or timed out
  local deadline=$((SECONDS + TIMEOUT))
  until grep -q "Ray runtime started" "$STATE/logs/$1.log" 2>/dev/null; do
    if ! leader_alive "$2" "$3"; then
      echo "$PROG: error: node $1 exited while starting: $(grep -E "Error|error|abort" "$STATE/logs/$1.log" \
            | tail -1 | cut -c1-200) (log: $STATE/logs/$1.log)" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "$PROG: error: node $1 did not start within ${TIMEOUT} s (log: $STATE/logs/$1.log)" >&2
      return 1
    fi
    sleep 0.5
  done
}

gcs_nodes() {  # one line per node the GCS knows: "node_manager_port ALIVE|DEAD cpus"
  RAY_AUTH_MODE=token timeout 20 "$PY" - "$(cat "$STATE/address")" <<'EOF'
import sys
from ray._raylet import GcsClient
from ray.core.generated.gcs_pb2 import GcsNodeInfo
try:
    infos = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10).values()
except Exception as exc:  # an unreachable GCS: no nodes
    sys.exit(f"the GCS at {sys.argv[1]} does not answer ({type(exc).__name__})")
for info in infos:
    state = GcsNodeInfo.GcsNodeState.Name(info.state)
    print(info.node_manager_port, state, f"{info.resources_total.get('CPU', 0):g}")
EOF
}

cmd_up() {
  [[ -n $N ]] || usage "up needs N, the number of worker nodes"
  is_uint "$N" && ((N >= 1 && N <= MAX_WORKERS)) || usage "N must be an integer from 1 to $MAX_WORKERS, got '$N'"
  is_uint "$CPUS" && ((CPUS >= 1)) || usage "--cpus must be an integer >= 1, got '$CPUS'"
  is_uint "$HEAD_CPUS" || usage "--head-cpus must be an integer >= 0, got '$HEAD_CPUS'"
  is_uint "$BASE" || usage "--base-port must be an integer, got '$BASE'"
  is_uint "$STORE_MB" && ((STORE_MB >= 80)) || usage "--object-store-mb must be an integer >= 80, got '$STORE_MB'"
  [[ -x $PY ]] || die "no python at $PY: run ./setup.sh first (or set ROBUSTUNE_PYTHON)"
  lock_state
  local name pid tmp rest
  while read -r name pid tmp rest; do
    leader_alive "$pid" "$tmp" && die "a local cluster from $STATE is already up at $(cat "$STATE/address"): \
'$PROG status' shows it, '$PROG down' stops it"
  done < <(read_nodes)
  if [[ -f $STATE/nodes ]]; then  # a cluster whose nodes died: stop what is left of it, forget it
    stop_all || die "a dead cluster's processes are still running: $(all_members | tr '\n' ' ')"
    forget
  fi
  check_ports "$BASE" $((BASE + PORTS_PER_NODE * (N + 1) - 1))
  TMPROOT=$(mktemp -d "${ROBUSTUNE_LOCAL_CLUSTER_TMP:-/tmp}/rlc.XXXXXX")  # short: Ray's socket paths must fit 107 bytes
  echo "$TMPROOT" > "$STATE/tmp"
  echo "127.0.0.1:$BASE" > "$STATE/address"
  echo "http://127.0.0.1:$((BASE + 1))" > "$STATE/dashboard"
  : > "$STATE/nodes"
  rm -f -- "$STATE"/logs/*.log
  trap 'echo "$PROG: interrupted: stopping the nodes started so far" >&2; stop_all; forget; exit 130' INT TERM

  start_node 0 head "$HEAD_CPUS"
  read -r name pid tmp rest < "$STATE/nodes"
  wait_started head "$pid" "$tmp" || { stop_all; forget; exit 1; }
  local i
  for ((i = 1; i <= N; i++)); do start_node "$i" "worker-$i" "$CPUS"; done
  while read -r name pid tmp rest; do
    [[ $name == head ]] || wait_started "$name" "$pid" "$tmp" || { stop_all; forget; exit 1; }
  done < <(read_nodes)
  local deadline=$((SECONDS + 30)) alive=0
  while ((SECONDS < deadline)); do
    alive=$(gcs_nodes 2>/dev/null | grep -c " ALIVE " || true)
    ((alive == N + 1)) && break
    sleep 1
  done
  if ((alive != N + 1)); then
    echo "$PROG: error: the GCS sees $alive alive nodes, expected $((N + 1)) (logs: $STATE/logs)" >&2
    stop_all; forget; exit 1
  fi
  trap - INT TERM
  local token=$HOME/.ray/auth_token
  [[ -f $token ]] && chmod 600 "$token"  # Ray writes it readable by everyone; it is the key to the cluster
  local address=127.0.0.1:$BASE
  cat <<EOF
local Ray cluster up: head ($HEAD_CPUS CPU) + $N worker nodes ($CPUS CPU each, ${STORE_MB} MiB object store), all on 127.0.0.1
  address    $address   (ports $BASE-$((BASE + PORTS_PER_NODE * (N + 1) - 1)), token auth: ~/.ray/auth_token)
  dashboard  http://127.0.0.1:$((BASE + 1))
  join       $DRIVER_ENV .venv/bin/python -m tuner.search --space lwta --address $address
  in Python  $DRIVER_ENV python -c 'import ray; ray.init(address="$address")'
  status     $PROG status$(state_flag)      stop: $PROG down$(state_flag)
EOF
}

state_flag() { [[ $STATE == "${ROBUSTUNE_LOCAL_CLUSTER:-$HOME/.cache/robustune/local-cluster}" ]] || printf ' --state %s' "$STATE"; }

# --- status ------------------------------------------------------------------------------------
cmd_status() {
  [[ -f $STATE/nodes ]] || { echo "no local cluster in $STATE"; return 3; }
  local address gcs name pid tmp p cpus seen procs alive dead=0
  address=$(cat "$STATE/address")
  echo "local Ray cluster in $STATE"
  echo "  address    $address   (join: $DRIVER_ENV ... --address $address)"
  echo "  dashboard  $(cat "$STATE/dashboard")"
  gcs=$(gcs_nodes 2>&1) || { echo "  GCS        $gcs"; gcs=""; }
  printf '  %-10s %-8s %-6s %-12s %-5s %-10s %s\n' node pid procs ports cpus "ray start" "ray (GCS)"
  while read -r name pid tmp p cpus; do
    procs=$(members "$pid" "$tmp" | wc -l)
    seen=$(awk -v port=$((p + 3)) '$1 == port {print $2; exit}' <<<"$gcs")
    if leader_alive "$pid" "$tmp"; then alive=alive; else alive=dead; dead=1; fi
    [[ $seen == ALIVE ]] || dead=1
    printf '  %-10s %-8s %-6s %-12s %-5s %-10s %s\n' "$name" "$pid" "$procs" "$p-$((p + 99))" "$cpus" "$alive" \
      "${seen:-unknown}"
  done < <(read_nodes)
  local ray_alive
  ray_alive=$(grep -c " ALIVE " <<<"$gcs" || true)
  echo "  Ray sees $ray_alive alive node(s); details: $DRIVER_ENV $ROOT/.venv/bin/ray status --address $address"
  return $dead
}

# --- main --------------------------------------------------------------------------------------
SUB=${1:-}
[[ -n $SUB ]] || usage "no subcommand"
[[ $SUB == -h || $SUB == --help || $SUB != -* ]] || usage "the subcommand comes first, got '$SUB'"
shift
N=""
KEEP_TEMP=0
while (($#)); do
  case $1 in
    --state) STATE=${2:-}; shift 2 || usage "--state needs a value" ;;
    --state=*) STATE=${1#*=}; shift ;;
    --cpus) CPUS=${2:-}; shift 2 || usage "--cpus needs a value" ;;
    --cpus=*) CPUS=${1#*=}; shift ;;
    --head-cpus) HEAD_CPUS=${2:-}; shift 2 || usage "--head-cpus needs a value" ;;
    --head-cpus=*) HEAD_CPUS=${1#*=}; shift ;;
    --base-port) BASE=${2:-}; shift 2 || usage "--base-port needs a value" ;;
    --base-port=*) BASE=${1#*=}; shift ;;
    --object-store-mb) STORE_MB=${2:-}; shift 2 || usage "--object-store-mb needs a value" ;;
    --object-store-mb=*) STORE_MB=${1#*=}; shift ;;
    --keep-temp) KEEP_TEMP=1; shift ;;
    -*) usage "unknown option '$1'" ;;
    *) [[ $SUB == up && -z $N ]] || usage "unexpected argument '$1'"; N=$1; shift ;;
  esac
done
[[ -n $STATE ]] || usage "--state needs a folder"
STATE=$(realpath -m -- "$STATE")
PREFIX=$(dirname "$(dirname "$PY")")  # the venv: every Ray process of ours runs a program from it

case $SUB in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  -h|--help|help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) usage "unknown subcommand '$SUB'" ;;
esac
