#!/usr/bin/env bash
# CI: the brokers and caches users run today. The contract and resilience
# integration tests (tests/worker/contract/, tests/worker/resilience/) run
# against the newest RabbitMQ, Valkey and Redis that Debian ships, on top of
# this machine's RabbitMQ 3.10 and Redis 7.0 that `cargo test` covers:
#
#   RabbitMQ 4.3 (unstable) + Valkey 9.1 (unstable): contract, resilience,
#     operations::bench and hostile::reply_to (Direct Reply-to changed in
#     4.2), then the three-node cluster test alone (it boots
#     three nodes, which under the other tests' load took longer than its
#     15 s wait), and the example requesters (examples/requesters/check.sh).
#   RabbitMQ 4.0 (trixie) + Redis 8.0 (unstable): contract, and resilience
#     without the three-node cluster, whose RabbitMQ code paths 4.3 covers.
#
# Run it alone from the repository root (`.ci/versions.sh`) or from .ci/run.
# Needs root (mmdebstrap, chroot, unshare) and Debian's package mirror.
#
# How the servers run:
# - Each Debian release is a chroot made by mmdebstrap from its packages,
#   cached under .ci/cache/versions/ (git-ignored; delete it to start cold).
#   unstable's Release file is past its Valid-Until date on the mirror, so
#   apt is told not to check it.
# - Every server program runs through a wrapper (bin-NAME/run in this run's
#   temporary folder, beside rabbitmq-server, rabbitmqctl, valkey-server,
#   redis-server and epmd wrappers that call it): `unshare
#   --mount` gives the command a mount namespace of its own, in which /proc
#   and the temporary directory (TMPDIR, else /tmp) are bind-mounted into the
#   chroot at the same paths, then `chroot`. The mounts exist only in that
#   namespace and go away with its last process: the host never sees them,
#   so deleting the cache can never reach into /tmp or /proc. The process
#   keeps its pid (no pid namespace), so tests kill it by pid and read
#   /proc/<pid>/cmdline as they do for the local installation.
# - The test harness starts its own RabbitMQ nodes (restart, cluster) with
#   LCM_TEST_RABBITMQ_SERVER, the chroot's rabbitmq-server wrapper; its data
#   directories are under the temporary directory, which is the same path in
#   and out of the chroot. LCM_TEST_RABBITMQCTL reaches the shared node,
#   LCM_TEST_REDIS_SERVER starts private Valkey/Redis servers and sentinels.
# - Erlang: each chroot's nodes and CLI tools use an epmd of their own on a
#   free port (ERL_EPMD_PORT, set in the wrappers; the epmd is started here
#   and stopped at the end), never the system node's epmd on 4369. Each node
#   has its own name, AMQP and distribution ports, and cookie (in its own
#   HOME). The system RabbitMQ is never touched.
# - The 4.3 nodes refuse transient non-exclusive queues
#   (deprecated_features.permit.transient_nonexcl_queues = false), as
#   upstream 4.3.0 does by default; Debian's 4.3 package still permits them.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS
cache=$PWD/.ci/cache/versions
tmp=${TMPDIR:-/tmp}
mirror=http://deb.debian.org/debian

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- The chroots.
step "mmdebstrap"
if ! command -v mmdebstrap >/dev/null; then
  apt-get install -y -qq mmdebstrap >/dev/null 2>&1 || { apt-get -qq update && apt-get install -y -qq mmdebstrap >/dev/null; }
fi
mmdebstrap --version

# bootstrap NAME SUITE PACKAGES: the chroot $cache/NAME, unless it is there
# with the same suite and packages. Made in NAME.new, renamed when complete.
bootstrap() {
  local name=$1 suite=$2 packages=$3 root=$cache/$1
  local want="$suite $packages"
  if [[ -f $root/.lcm-ci && $(cat "$root/.lcm-ci") == "$want" ]]; then
    echo "$name: cached ($want)"
    return
  fi
  rm -rf "$root" "$root.new"
  mmdebstrap --quiet --variant=apt --include="$packages" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$suite" "$root.new" "$mirror"
  echo "$want" > "$root.new/.lcm-ci"
  mv "$root.new" "$root"
}

step "bootstrap the chroots (unstable, trixie) in parallel"
mkdir -p "$cache"
t0=$SECONDS
bootstrap sid unstable rabbitmq-server,valkey-server,redis-server > "$cache/sid.log" 2>&1 &
sid_job=$!
bootstrap trixie trixie rabbitmq-server > "$cache/trixie.log" 2>&1 &
trixie_job=$!
status=0
wait "$sid_job" || { status=$?; cat "$cache/sid.log" >&2; }
wait "$trixie_job" || { status=$?; cat "$cache/trixie.log" >&2; }
(( status == 0 )) || exit "$status"
cat "$cache/sid.log" "$cache/trixie.log"
echo "chroots ready in $((SECONDS - t0)) s"
# RabbitMQ 4.3 as upstream ships it: transient non-exclusive queues denied
# (Debian's 4.3.6 permits them by default). Every node of the chroot reads
# its conf.d, the harness's own nodes too. Not on 4.0.5, whose nodes then
# fail to start again after a stop_app (fixed upstream in later 4.0.x).
mkdir -p "$cache/sid/etc/rabbitmq/conf.d"
echo 'deprecated_features.permit.transient_nonexcl_queues = false' \
  > "$cache/sid/etc/rabbitmq/conf.d/10-lcm-ci.conf"
for root in sid trixie; do
  chroot "$cache/$root" dpkg-query -W -f "$root: \${Package} \${Version}\n" \
    rabbitmq-server erlang-base valkey-server redis-server 2>/dev/null || true
done

# ---- The wrappers: bin/ of each chroot runs its programs, as described above.
run_dir=$(mktemp -d "$tmp/lcm-versions.XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$run_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wrappers() { # NAME EPMD_PORT
  local name=$1 epmd_port=$2 root=$cache/$1 bin=$run_dir/bin-$1
  mkdir -p "$bin"
  # Erlang resolves `localhost` (the node names' host) and this host's name.
  printf '127.0.0.1 localhost %s\n::1 localhost ip6-localhost\n' "$(hostname)" > "$root/etc/hosts"
  cat > "$bin/run" <<EOF
#!/bin/sh
# Runs PROGRAM ARGS... of the chroot $root in a mount namespace of its own,
# with /proc and $tmp bind-mounted (there only), in the current directory.
exec unshare --mount --propagation private -- /bin/sh -ec '
  mount -t proc proc "$root/proc"
  mkdir -p "$root$tmp"
  mount --bind "$tmp" "$root$tmp"
  exec chroot "$root" /bin/sh -c "cd \"\\\$0\" 2>/dev/null || cd /; exec \"\\\$@\"" "\$@"
' sh "\$PWD" "\$@"
EOF
  for program in rabbitmq-server rabbitmqctl; do
    printf '#!/bin/sh\nexport ERL_EPMD_PORT=%s\nexec %s/run /usr/lib/rabbitmq/bin/%s "$@"\n' \
      "$epmd_port" "$bin" "$program" > "$bin/$program"
  done
  for program in valkey-server redis-server epmd; do
    printf '#!/bin/sh\nexport ERL_EPMD_PORT=%s\nexec %s/run %s "$@"\n' \
      "$epmd_port" "$bin" "$program" > "$bin/$program"
  done
  chmod +x "$bin"/*
}

# start_epmd NAME: the chroot's own epmd on its own port, in the foreground
# of a background job so that its pid is known.
start_epmd() {
  local name=$1 port
  port=$(free_port)
  wrappers "$name" "$port"
  "$run_dir/bin-$name/epmd" -port "$port" -address 127.0.0.1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if "$run_dir/bin-$name/epmd" -port "$port" -names >/dev/null 2>&1; then
      echo "$name: epmd on $port"
      return
    fi
    sleep 0.1
  done
  echo "$name: epmd did not listen on $port" >&2
  return 1
}

# start_rabbitmq NAME: a node of the chroot NAME on free ports, with its
# own HOME (cookie) and data under $run_dir; sets amqp_url and writes the
# rabbitmqctl wrapper for it to $run_dir/ctl-NAME.
start_rabbitmq() {
  local name=$1 bin=$run_dir/bin-$1 port dist node dir
  port=$(free_port)
  dist=$(free_port)
  node=lcmci$name$port@localhost
  dir=$run_dir/node-$name
  mkdir -p "$dir"
  printf 'listeners.tcp.local = 127.0.0.1:%s\n' "$port" > "$dir/rabbitmq.conf"
  echo '[].' > "$dir/enabled_plugins"
  head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9 > "$dir/.erlang.cookie"
  chmod 400 "$dir/.erlang.cookie"
  cat > "$run_dir/ctl-$name" <<EOF
#!/bin/sh
# rabbitmqctl of node $node
export HOME="$dir" RABBITMQ_CONF_ENV_FILE="$dir/none.conf"
exec "$bin/rabbitmqctl" -n "$node" "\$@"
EOF
  chmod +x "$run_dir/ctl-$name"
  local t0=$SECONDS
  HOME=$dir RABBITMQ_CONF_ENV_FILE=$dir/none.conf RABBITMQ_NODENAME=$node \
    RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
    RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_PID_FILE=$dir/pid \
    RABBITMQ_DIST_PORT=$dist ERL_EPMD_ADDRESS=127.0.0.1 \
    "$bin/rabbitmq-server" -detached
  for _ in $(seq 1 900); do
    if [[ -s $dir/pid ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  [[ -s $dir/pid ]] || { echo "$name: RabbitMQ did not start" >&2; cat "$dir"/log/* >&2 || true; return 1; }
  pids+=("$(cat "$dir/pid")")
  "$run_dir/ctl-$name" -q await_startup
  echo "$name: $("$run_dir/ctl-$name" -q version | tail -n 1) on $port, node $node, up in $((SECONDS - t0)) s"
  amqp_url="amqp://guest:guest@127.0.0.1:$port/%2f"
}

# start_cache NAME PROGRAM: valkey-server or redis-server of the chroot on
# a free port; sets redis_url.
start_cache() {
  local name=$1 program=$2 port
  port=$(free_port)
  "$run_dir/bin-$name/$program" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    > "$run_dir/$program.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
    sleep 0.1
  done
  echo "$program: $(redis-cli -p "$port" info server | tr -d '\r' | grep -E '^(valkey|redis)_version:' | paste -sd ' ') on $port"
  redis_url="redis://127.0.0.1:$port"
}

# ---- The tests, built once (warm when .ci/run has just run `cargo test`).
step "build the integration tests"
cargo test --quiet --test worker --no-run

# run_tests BROKER_CHROOT CACHE_CHROOT CACHE_PROGRAM FILTERS...
run_tests() {
  local broker=$1 cache_root=$2 cache_program=$3; shift 3
  LCM_TEST_AMQP_URL=$amqp_url LCM_TEST_REDIS_URL=$redis_url \
    LCM_TEST_RABBITMQ_SERVER=$run_dir/bin-$broker/rabbitmq-server \
    LCM_TEST_RABBITMQCTL=$run_dir/ctl-$broker \
    LCM_TEST_REDIS_SERVER=$run_dir/bin-$cache_root/$cache_program \
    cargo test --quiet --test worker -- "$@"
}

step "servers of unstable and trixie"
start_epmd sid
start_epmd trixie

step "RabbitMQ 4.3 (unstable) + Valkey (unstable)"
start_rabbitmq sid
start_cache sid valkey-server
t0=$SECONDS
run_tests sid sid valkey-server contract:: resilience:: operations::bench:: hostile::reply_to:: \
  --skip resilience::cluster::
echo "contract, resilience, bench, Direct Reply-to on RabbitMQ 4.3 + Valkey: $((SECONDS - t0)) s"

step "the three-node cluster on RabbitMQ 4.3, alone: its nodes get both cores"
t0=$SECONDS
run_tests sid sid valkey-server resilience::cluster:: --nocapture
echo "cluster on RabbitMQ 4.3: $((SECONDS - t0)) s"

step "example requesters on RabbitMQ 4.3 + Valkey"
[[ -x .ci/venv/bin/python ]] || python3 -m venv .ci/venv
.ci/venv/bin/python -c 'import pika, jsonschema' 2>/dev/null \
  || .ci/venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
[[ -d examples/requesters/node/node_modules/amqplib ]] \
  || npm ci --prefix examples/requesters/node --loglevel=error --no-audit --no-fund >/dev/null
LCM__AMQP__URL=$amqp_url LCM__REDIS__URL=$redis_url PYTHON=.ci/venv/bin/python \
  examples/requesters/check.sh target/debug/lcm-worker

step "RabbitMQ 4.0 (trixie) + Redis 8.0 (unstable)"
start_rabbitmq trixie
start_cache sid redis-server
t0=$SECONDS
run_tests trixie sid redis-server contract:: resilience:: --skip resilience::cluster::
echo "contract, resilience (no cluster) on RabbitMQ 4.0 + Redis 8.0: $((SECONDS - t0)) s"

step "versions: done in $((SECONDS - started)) s"
