#!/usr/bin/env bash
# Runs the example requesters (python/ and node/) against a real worker and
# checks what they print and how they exit.
#
#   examples/requesters/check.sh path/to/lcm-worker
#
# Starts the given worker with exchange, queue and Redis key names of its
# own (LCM__... variables, so the defaults are left alone) and a free HTTP
# port, seeds config/demo-data.json under that key prefix, waits for
# /readyz, then checks, for each requester:
#   - call 12345 exits 0 and prints the sample reply of docs/protocol.md
#     section 5 (compared as JSON values);
#   - an unknown call exits 1 and prints the WS_Error `Invalid Call ID:<id>`;
#   - each printed reply is valid against its schema in docs/schemas/
#     (when the python module jsonschema is installed);
#   - with --trace, the trace id printed is the one the reply's traceparent
#     carries on.
# Then stops the worker with SIGTERM (it must exit 0) and deletes its
# exchanges, queues and Redis keys, also on failure or interrupt.
#
# Needs RabbitMQ and Redis (LCM__AMQP__URL, LCM__REDIS__URL; defaults
# 127.0.0.1 with guest/guest), node with examples/requesters/node/node_modules
# (`npm ci` in that folder), redis-cli, and a python with pika
# (`pip install -r examples/requesters/python/requirements.txt`); set PYTHON
# to choose it (default python3). .ci/run sets all this up.
set -euo pipefail
cd "$(dirname "$0")/../.."

worker=${1:?usage: examples/requesters/check.sh path/to/lcm-worker}
[[ -x $worker ]] || { echo "not an executable: $worker" >&2; exit 2; }
worker=$(realpath "$worker")
python=${PYTHON:-python3}
export LCM__AMQP__URL=${LCM__AMQP__URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
redis_url=${LCM__REDIS__URL:-redis://127.0.0.1:6379}

"$python" -c 'import pika' 2>/dev/null \
  || { echo "$python cannot import pika: pip install -r examples/requesters/python/requirements.txt" >&2; exit 2; }
[[ -d examples/requesters/node/node_modules/amqplib ]] \
  || { echo "run \`npm ci\` in examples/requesters/node first" >&2; exit 2; }

run="requesters-$$-$RANDOM"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LCM__AMQP__REQUEST_EXCHANGE="$run.requests" LCM__AMQP__REQUEST_QUEUE="$run.queue" \
  LCM__AMQP__REPLY_EXCHANGE="$run.replies" LCM__AMQP__DEAD_LETTER_EXCHANGE="$run.dead" \
  LCM__AMQP__DEAD_LETTER_QUEUE="$run.queue.dead" LCM__REDIS__KEY_PREFIX="$run" \
  LCM__REDIS__URL="$redis_url" LCM__HTTP__ADDR="127.0.0.1:$port" RUST_LOG=warn
out=$(mktemp -d)
worker_pid=

stop_worker() { # SIGTERM, then wait: the worker drains and exits 0
  [[ -n $worker_pid ]] || return 0
  local status=0
  kill -TERM "$worker_pid" 2>/dev/null || true
  wait "$worker_pid" || status=$?
  worker_pid=
  return "$status"
}

cleanup() {
  local status=$?
  stop_worker || true
  # Through AMQP (pika), so no management plugin or rabbitmqctl is needed.
  "$python" - "$run" <<'PY' || echo "warning: could not delete the exchanges and queues of $run" >&2
import os, sys, pika
run = sys.argv[1]
connection = pika.BlockingConnection(pika.URLParameters(os.environ["LCM__AMQP__URL"]))
channel = connection.channel()
for queue in (f"{run}.queue", f"{run}.queue.dead"):
    channel.queue_delete(queue)
for exchange in (f"{run}.requests", f"{run}.replies", f"{run}.dead"):
    channel.exchange_delete(exchange)
connection.close()
PY
  redis-cli -u "$redis_url" --scan --pattern "$run:*" | xargs -r redis-cli -u "$redis_url" del >/dev/null \
    || echo "warning: could not delete the Redis keys $run:*" >&2
  if (( status != 0 )) && [[ -s $out/worker.log ]]; then
    echo "--- worker log (last 20 lines)" >&2
    tail -n 20 "$out/worker.log" >&2
  fi
  rm -rf "$out"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$worker" seed config/demo-data.json >/dev/null
"$worker" run 2>"$out/worker.log" &
worker_pid=$!

# Wait for /readyz 200 (consuming and Redis answering), at most 30 s.
"$python" - "$port" "$worker_pid" <<'PY'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the worker exited before it was ready")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            if answer.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("the worker was not ready within 30 s")
    time.sleep(0.1)
PY

passed=0 failed=0
expect() { # name, expected exit, expected reply (sample | unknown:<callid>), command...
  local name=$1 want=$2 kind=$3; shift 3
  local got=0
  "$@" >"$out/reply.json" 2>"$out/stderr.txt" || got=$?
  if [[ $got != "$want" ]]; then
    echo "FAIL $name: exit $got, expected $want; stderr: $(head -c 300 "$out/stderr.txt")" >&2
    failed=$((failed + 1))
  elif ! "$python" - "$kind" "$out/reply.json" <<'PY'; then
import json, pathlib, re, sys
kind, printed = sys.argv[1], json.loads(pathlib.Path(sys.argv[2]).read_text())
if kind == "sample":
    # The success sample of docs/protocol.md section 5: the first JSON block
    # whose subtopic is BusinessOutCome.
    blocks = re.findall(r"```json\n(.*?)```", pathlib.Path("docs/protocol.md").read_text(), re.S)
    expected = next(b for b in map(json.loads, blocks) if b.get("subtopic") == "BusinessOutCome")
    schema = "business-outcome.json"
else:
    callid = kind.split(":", 1)[1]
    expected = {"channel": "LCM", "topic": "WebService", "subtopic": "WS_Error",
                "message": {"callid": callid, "errorType": "WS_Error",
                            "errorMessage": f"Invalid Call ID:{callid}", "msg": "Invalid Call ID."}}
    schema = "ws-error.json"
if printed != expected:
    sys.exit(f"printed {json.dumps(printed)}\nexpected {json.dumps(expected)}")
try:
    import jsonschema
except ImportError:
    sys.exit(0)
jsonschema.validate(printed, json.loads(pathlib.Path("docs/schemas", schema).read_text()))
PY
    echo "FAIL $name: the printed reply differs (above)" >&2
    failed=$((failed + 1))
  else
    echo "ok   $name"
    passed=$((passed + 1))
  fi
}

# --trace: the reply's traceparent continues the trace the requester
# started (the worker here exports nothing; the trace goes on regardless).
expect_traced() { # name, command...
  local name=$1; shift
  local trace
  if ! "$@" --trace >"$out/reply.json" 2>"$out/stderr.txt"; then
    echo "FAIL $name: exit non-zero; stderr: $(head -c 300 "$out/stderr.txt")" >&2
    failed=$((failed + 1))
    return
  fi
  trace=$(sed -n 's/^trace \([0-9a-f]\{32\}\)$/\1/p' "$out/stderr.txt")
  if [[ -n $trace ]] && grep -Eq "^reply traceparent 00-$trace-[0-9a-f]{16}-01$" "$out/stderr.txt"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name: stderr: $(head -c 300 "$out/stderr.txt")" >&2
    failed=$((failed + 1))
  fi
}

unknown="no-such-call-$run"
expect "python: call 12345 answers the sample reply, exit 0" 0 sample \
  "$python" examples/requesters/python/requester.py --callid 12345 --account '5|3|1|0|0|44|1'
expect "python: an unknown call answers WS_Error, exit 1" 1 "unknown:$unknown" \
  "$python" examples/requesters/python/requester.py --callid "$unknown" --account '5|3|1|0|0|44|1'
expect "node: call 12345 answers the sample reply, exit 0" 0 sample \
  node examples/requesters/node/requester.mjs --callid 12345 --account '5|3|1|0|0|44|1'
expect "node: an unknown call answers WS_Error, exit 1" 1 "unknown:$unknown" \
  node examples/requesters/node/requester.mjs --callid "$unknown" --account '5|3|1|0|0|44|1'

expect_traced "python: --trace prints a trace id that the reply's traceparent continues" \
  "$python" examples/requesters/python/requester.py --callid 12345 --account '5|3|1|0|0|44|1'
expect_traced "node: --trace prints a trace id that the reply's traceparent continues" \
  node examples/requesters/node/requester.mjs --callid 12345 --account '5|3|1|0|0|44|1'

if stop_worker; then
  echo "ok   the worker exits 0 on SIGTERM"
  passed=$((passed + 1))
else
  echo "FAIL the worker did not exit 0 on SIGTERM" >&2
  failed=$((failed + 1))
fi

echo "requesters: $passed passed, $failed failed"
(( failed == 0 ))
