# lcm-worker image: a release build of the `lcm-worker` binary on Debian
# bookworm-slim, running as an unprivileged user (uid 10001).
#
#   docker build -t lcm-worker:local .                      # Engine 23 or later
#   DOCKER_BUILDKIT=1 docker build -t lcm-worker:local .    # Engine 20.10 to 22
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -e LCM__AMQP__URL=amqp://user:pass@broker:5672/%2f \
#     -e LCM__REDIS__URL=redis://redis:6379 \
#     lcm-worker:local                                      # the worker
#   docker run --rm -e LCM__REDIS__URL=redis://redis:6379 \
#     lcm-worker:local seed /app/config/demo-data.json      # load demo data
#
# Configuration: /app/config/default.toml (the working directory is /app),
# then the file named by LCM_CONFIG, then LCM__<SECTION>__<KEY> variables.
#
# The build needs BuildKit (RUN --mount): the default builder from Engine 23
# and in Docker Compose v2; DOCKER_BUILDKIT=1 on Engine 20.10 to 22. There is
# no `# syntax=` line: the Dockerfile frontend built into Engine 20.10 and
# later reads every instruction here, and a `# syntax=` line would make
# BuildKit download a frontend image first. docs/docker.md lists the versions
# CI runs.

# Any 1.x toolchain >= the crate's rust-version (1.88). Pin it for
# reproducible builds, e.g. --build-arg RUST_VERSION=1.88.
ARG RUST_VERSION=1

# ---------------------------------------------------------------- build ---
# Bookworm, like the runtime stage, so the binary links against the same glibc.
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /build

# Sources are bind-mounted from the build context rather than copied, and the
# cargo registry and target/ are cache mounts kept between builds: the first
# build compiles every dependency, later builds recompile only what changed.
# target/ is unmounted when this step ends, so the binary is copied out of it.
# What is mounted, and why (.dockerignore lets in exactly these):
# - benches/: Cargo.toml declares a bench target, and cargo refuses a
#   manifest whose declared targets are missing;
# - patches/amq-protocol-types/: Cargo.toml's [patch.crates-io] builds the
#   AMQP frame parser from there (see its PATCH.md).
# Default features: the worker and `bench`, the load generator, so that a
# stack run with Docker alone can be load-tested too
# (`docker compose exec worker lcm-worker bench`).
# (The slim image's gcc is enough for the crates that compile C, e.g. ring.)
RUN --mount=type=bind,source=Cargo.toml,target=Cargo.toml \
    --mount=type=bind,source=Cargo.lock,target=Cargo.lock \
    --mount=type=bind,source=src,target=src \
    --mount=type=bind,source=benches,target=benches \
    --mount=type=bind,source=patches/amq-protocol-types,target=patches/amq-protocol-types \
    --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release --locked --bin lcm-worker \
 && install -D -m 0755 target/release/lcm-worker /out/lcm-worker

# -------------------------------------------------------------- runtime ---
FROM debian:bookworm-slim AS runtime

LABEL org.opencontainers.image.title="lcm-worker" \
      org.opencontainers.image.description="Answers LCM GetBusinessOutcome requests from RabbitMQ out of a Redis cache" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

# ca-certificates: the system roots that amqps:// and rediss:// are verified
# against unless amqp.tls.ca_file / redis.tls.ca_file is set. curl: the
# HEALTHCHECK below (the binary has no HTTP client command), and a way to
# read /readyz and /metrics with `docker exec`.
# Versions are not pinned (hadolint DL3008): the bookworm-slim base is the
# pin, and Debian's archive drops superseded versions, so pinned versions
# would break the build at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 lcm \
 && useradd --system --uid 10001 --gid lcm \
      --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin lcm

WORKDIR /app
COPY --from=builder /out/lcm-worker /usr/local/bin/lcm-worker
# default.toml (read from the working directory) and demo-data.json (for seed).
COPY config/ /app/config/

USER 10001:10001

# /healthz, /readyz and /metrics (LCM__HTTP__ADDR, default 0.0.0.0:8080; the
# HEALTHCHECK below asks port 8080, so change it too if you move the port).
EXPOSE 8080

# Healthy = ready: /readyz answers 200 while the worker consumes from
# RabbitMQ and Redis answers, 503 otherwise (for example while it
# reconnects). Docker only reports the status; it does not restart an
# unhealthy container. An orchestrator that restarts on a failed liveness
# probe should probe /healthz (the process answers) instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/readyz"]

# The binary handles SIGTERM itself: it drains within shutdown.grace_ms
# (default 10 s), so give `docker stop` more than that (e.g. --time 15).
ENTRYPOINT ["lcm-worker"]
CMD ["run"]
