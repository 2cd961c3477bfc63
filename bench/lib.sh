# Shared by the bench scripts (sourced, not run): each run's own broker
# and Redis names, waiting for the worker to consume, and removing what a
# run declared. Python work goes to bench/tools.py.

# bench_names RUN: exports the worker's settings so that every queue,
# exchange and Redis key of this run starts with RUN.
bench_names() {
  local run=$1
  export LCM__AMQP__REQUEST_EXCHANGE="$run.requests" LCM__AMQP__REQUEST_QUEUE="$run.queue" \
    LCM__AMQP__REPLY_EXCHANGE="$run.replies" LCM__AMQP__DEAD_LETTER_EXCHANGE="$run.dead" \
    LCM__AMQP__DEAD_LETTER_QUEUE="$run.queue.dead" LCM__REDIS__KEY_PREFIX="$run"
}

# bench_remove RUN TAG: deletes the queues and exchanges `bench_names RUN`
# named, and every Redis key under RUN; best effort. TAG names the caller
# in the broker's log.
bench_remove() {
  local run=$1 tag=$2 queue exchange
  for queue in "$run.queue" "$run.queue.dead"; do
    rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
  done
  # rabbitmqctl has no delete_exchange; this is the broker's own call
  # (RabbitMQ 3.x).
  for exchange in "$run.requests" "$run.replies" "$run.dead"; do
    rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$exchange\">>), false, <<\"$tag\">>)." \
      >/dev/null 2>&1 || true
  done
  redis-cli --scan --pattern "$run:*" | xargs -r -n 500 redis-cli del >/dev/null 2>&1 || true
}

# bench_wait_consuming PID QUEUE: returns once QUEUE has a consumer; exits
# the script if PID exits first or 20 s pass.
bench_wait_consuming() {
  local pid=$1 queue=$2
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || { echo "the process under test exited" >&2; exit 1; }
    if rabbitmqctl -q list_consumers queue_name 2>/dev/null | grep -qx "$queue"; then return; fi
    sleep 0.1
  done
  echo "no consumer on $queue after 20 s" >&2
  exit 1
}

# bench_stop PID: SIGTERM, and waits for it; nothing when PID is empty.
bench_stop() {
  [[ -n ${1:-} ]] || return 0
  if kill -TERM "$1" 2>/dev/null; then
    wait "$1" 2>/dev/null || true
  fi
}

# bench_binary GIVEN: GIVEN when set (a binary to measure, nothing built),
# else the release build of this checkout, built niced (fat LTO makes the
# first build slow; a no-op when up to date). Prints the path.
bench_binary() {
  if [[ -n ${1:-} ]]; then
    echo "$1"
  else
    nice -n 19 cargo build --release --quiet --bin lcm-worker >&2
    echo target/release/lcm-worker
  fi
}

# bench_build EXAMPLE: the release build of the worker, then of EXAMPLE. Two
# builds: built together, the worker would get the features the example's
# dev-dependencies turn on (tokio's `test-util`, whose clock every timer and
# `Instant::now` consults), which the shipped binary has not.
bench_build() {
  cargo build --release --quiet --bin lcm-worker
  cargo build --release --quiet --example "$1"
}

# bench_cpu_ticks PID: the process's user + system CPU time so far, in clock
# ticks (getconf CLK_TCK a second).
bench_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# bench_rss PID: the process's resident memory now, in kB.
bench_rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# bench_burst WORKER_PID BIN CALLID...: one `BIN request` per CALLID (account
# 1), all at once; sets burst_peak (the worker's largest RSS in kB while they
# ran) and burst_failed (requests that got no reply).
bench_burst() {
  local pid=$1 bin=$2 callid p x pids=()
  shift 2
  for callid in "$@"; do
    "$bin" request --callid "$callid" --account 1 --timeout 60s >/dev/null 2>&1 & pids+=($!)
  done
  burst_peak=0
  while kill -0 "${pids[@]}" 2>/dev/null; do
    x=$(bench_rss "$pid"); (( x > burst_peak )) && burst_peak=$x
    sleep 0.05
  done
  burst_failed=0
  for p in "${pids[@]}"; do wait "$p" || burst_failed=$((burst_failed + 1)); done
}
