#!/usr/bin/env bash
# Local stand-ins for the images that docker-compose.yml and the Dockerfile
# name, for a machine that cannot pull from Docker Hub (CI here). Each is a
# Debian bookworm root file system made by mmdebstrap from Debian's
# packages, imported into Docker under the official name. The compose file
# and the Dockerfile keep naming the official images, which users pull.
#
#   .ci/standins/build.sh                          # build what is missing or out of date
#   LCM_STANDINS_REBUILD=1 .ci/standins/build.sh   # build every stand-in again
#
# Needs root, mmdebstrap, a running Docker Engine, and the Rust toolchain
# the machine builds with (for the builder image).
#
# | official name            | stand-in                                                         |
# |--------------------------|------------------------------------------------------------------|
# | debian:bookworm-slim     | mmdebstrap --variant=minbase bookworm, without docs, man pages   |
# |                          | and locales, as the slim image                                   |
# | rust:<v>-slim-bookworm   | the same base with gcc, libc6-dev, ca-certificates and this      |
# |                          | machine's own Rust toolchain (`rustc --print sysroot`, no docs)  |
# | rabbitmq:<v>-management  | Debian's rabbitmq-server (3.10) with the management plugin;      |
# |                          | rabbitmq/docker-entrypoint.sh honours RABBITMQ_DEFAULT_USER/_PASS |
# | redis:<v>                | Debian's redis-server (7.0); redis/docker-entrypoint.sh          |
# | prom/prometheus:<v>      | Debian's prometheus (2.42), run as the official image runs it    |
#
# grafana/grafana has no Debian package and gets no stand-in: .ci/run checks
# its provisioning files statically, and CI starts no Grafana.
#
# The names come from the two files, so a changed tag gets a stand-in of the
# new name; a name this script does not know stops it. An image of that name
# that is not a stand-in (one pulled from a registry) is used as it is. Each
# stand-in records a digest of what it was built from in its comment
# (`docker image inspect -f '{{.Comment}}'`), and is rebuilt when that
# changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD/.ci/standins
marker="lcm-worker CI stand-in"

mirror=http://deb.debian.org/debian
sources=(
  "deb $mirror bookworm main"
  "deb $mirror bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
# Options every stand-in is built with. They stay in the image's
# /etc/apt/apt.conf.d/99mmdebstrap and /etc/dpkg/dpkg.cfg.d/99mmdebstrap,
# so later `apt-get install`s (the Dockerfile's runtime stage) follow them:
# - the Debian mirror this machine reaches serves a fixed snapshot, whose
#   Release files are past their Valid-Until date;
# - no Recommends, and no docs, man pages or locales, as the slim images.
common=(
  --variant=minbase --mode=root --format=tar --quiet
  --aptopt='Acquire::Check-Valid-Until "false"'
  --aptopt='Acquire::Check-Date "false"'
  --aptopt='APT::Install-Recommends "false"'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  # Merged /usr, as in the official images, without the usrmerge package
  # (which brings perl).
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  # Docker provides both at run time; the host's copies do not belong in an image.
  --customize-hook='rm -f "$1/etc/hostname"; : > "$1/etc/resolv.conf"'
  # What the official Debian images add for apt, so that an `apt-get
  # install` in a Dockerfile leaves no package caches behind (without it,
  # 84 MB of /var/cache/apt/*.bin stayed in the worker image) and fetches
  # no translations. With it, mmdebstrap's clean-up no longer finds the
  # caches its own apt made, so they go here.
  --customize-hook='printf "%s\n" "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" > "$1/etc/apt/apt.conf.d/docker-clean" && rm -f "$1"/var/cache/apt/*.bin'
  --customize-hook='echo "Acquire::Languages \"none\";" > "$1/etc/apt/apt.conf.d/docker-no-languages"'
)

# ---- The image names the Dockerfile and the compose file use.
rust_version=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
mapfile -t names < <(
  {
    sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile | sed "s/\${RUST_VERSION}/$rust_version/"
    sed -n 's/^ *image: *["'\'']\{0,1\}\([^"'\'' ]*\).*/\1/p' docker-compose.yml
  } | sort -u
)

# ---- Two root file systems. The base is debian:bookworm-slim alone. Every
# other stand-in is the same second root, which holds all their packages and
# files, with its own image settings (entrypoint, user, ...): one bootstrap
# instead of four, which saves most of the time on a 2-core machine.

services_root() { # mmdebstrap arguments of the second root, after the common ones
  local sysroot host version toolchain
  sysroot=$(rustc --print sysroot)
  host=$(rustc -vV | sed -n 's/^host: //p')
  version=$(rustc -V | awk '{print $2}')
  toolchain="$version-$host"
  args=(
    --include=ca-certificates,gcc,libc6-dev,rabbitmq-server,redis-server,prometheus
    # rust: this machine's toolchain, where the official image has it.
    --customize-hook="mkdir -p \"\$1/usr/local/rustup/toolchains/$toolchain\" \"\$1/usr/local/cargo/bin\""
    --customize-hook="tar -C '$sysroot' --exclude=./share/doc -cf - . | tar -C \"\$1/usr/local/rustup/toolchains/$toolchain\" -xf -"
    --customize-hook="for tool in cargo rustc rustdoc; do ln -s ../../rustup/toolchains/$toolchain/bin/\$tool \"\$1/usr/local/cargo/bin/\$tool\"; done"
    # rabbitmq: the entrypoint, the defaults it copies, and what
    # `rabbitmq-plugins enable --offline rabbitmq_management` writes.
    --customize-hook='mkdir -p "$1/usr/local/lib/rabbitmq" "$1/usr/local/lib/redis"'
    --customize-hook="copy-in $here/rabbitmq/docker-entrypoint.sh /usr/local/lib/rabbitmq/"
    --customize-hook="copy-in $here/rabbitmq/10-defaults.conf /etc/rabbitmq/"
    --customize-hook='echo "[rabbitmq_management]." > "$1/etc/rabbitmq/enabled_plugins"'
    # redis: the entrypoint, and the data directory.
    --customize-hook="copy-in $here/redis/docker-entrypoint.sh /usr/local/lib/redis/"
    --customize-hook='mkdir -p "$1/data" && chroot "$1" chown redis:redis /data'
    # prometheus: the official image keeps its data in /prometheus, owned by
    # nobody, the user it runs as.
    --customize-hook='mkdir -p "$1/prometheus" && chroot "$1" chown nobody:nogroup /prometheus'
  )
  # Certificate authorities this machine added to its own trust store: its
  # traffic to crates.io passes a proxy that presents certificates signed by
  # them, so cargo inside the builder needs them as the host's cargo does.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    args+=(--customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" && chroot "$1" update-ca-certificates >/dev/null')
  fi
}

settings() { # kind -> the image settings of that stand-in, into `changes`
  case $1 in
    debian) changes=('CMD ["bash"]') ;;
    rust) changes=(
      "ENV RUSTUP_HOME=/usr/local/rustup"
      "ENV CARGO_HOME=/usr/local/cargo"
      "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
      "ENV RUST_VERSION=$(rustc -V | awk '{print $2}')"
      'CMD ["bash"]'
    ) ;;
    rabbitmq) changes=(
      "ENV LANG=C.UTF-8"
      "VOLUME /var/lib/rabbitmq"
      "EXPOSE 4369 5671 5672 15671 15672 15691 15692 25672"
      'ENTRYPOINT ["/usr/local/lib/rabbitmq/docker-entrypoint.sh"]'
      'CMD ["rabbitmq-server"]'
    ) ;;
    redis) changes=(
      "WORKDIR /data"
      "VOLUME /data"
      "EXPOSE 6379"
      'ENTRYPOINT ["/usr/local/lib/redis/docker-entrypoint.sh"]'
      'CMD ["redis-server"]'
    ) ;;
    prometheus) changes=(
      "USER nobody"
      "WORKDIR /prometheus"
      "VOLUME /prometheus"
      "EXPOSE 9090"
      'ENTRYPOINT ["/bin/prometheus"]'
      'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
    ) ;;
  esac
}

kind_of() { # image name -> kind, or "" for no stand-in
  case $1 in
    lcm-worker:*) echo "" ;;          # built from this repository
    grafana/grafana:*) echo "" ;;     # no Debian package (see the top)
    debian:bookworm-slim) echo debian ;;
    rust:*-slim-bookworm) echo rust ;;
    rabbitmq:*-management) echo rabbitmq ;;
    redis:*) echo redis ;;
    prom/prometheus:*) echo prometheus ;;
    *) echo "no stand-in is known for the image $1: add one to $0" >&2; return 1 ;;
  esac
}

bootstrap() { # root image-name comment: mmdebstrap, then import under a temporary name and tag
  local root=$1 name=$2 comment=$3 temporary="lcm-standin-partial:$1"
  args=() changes=()
  if [[ $root == services ]]; then services_root; else settings debian; fi
  # A failed bootstrap must not leave an image under the real name, hence
  # the temporary one.
  if ! mmdebstrap "${common[@]}" "${args[@]}" bookworm - "${sources[@]}" \
    | docker import "${changes[@]/#/--change=}" --message "$comment" - "$temporary" >/dev/null; then
    docker rmi "$temporary" >/dev/null 2>&1 || true
    return 1
  fi
  replace "$temporary" "$name"
}

replace() { # image name: tag the image as name; remove the image name had before, unless in use
  local old
  old=$(docker image inspect -f '{{.Id}}' "$2" 2>/dev/null || true)
  docker tag "$1" "$2"
  docker rmi "$1" >/dev/null
  if [[ -n $old && $old != "$(docker image inspect -f '{{.Id}}' "$2")" ]]; then
    docker rmi "$old" >/dev/null 2>&1 || true
  fi
}

configure() { # root-image name kind comment: the root with this stand-in's settings
  local container
  settings "$3"
  container=$(docker create "$1" true)
  docker commit "${changes[@]/#/--change=}" --message "$4" "$container" "lcm-standin-partial:$3" >/dev/null
  docker rm "$container" >/dev/null
  replace "lcm-standin-partial:$3" "$2"
}

# Everything a stand-in is built from; its digest is in every stand-in's comment.
comment="$marker $( {
  cat "$0"
  find "$here" -type f ! -name build.sh -print0 | sort -z | xargs -0 cat
  rustc -vV
} | sha256sum | cut -c1-16)"

todo=()
for name in "${names[@]}"; do
  kind=$(kind_of "$name")
  if [[ -z $kind ]]; then
    echo "stand-ins: $name: none (not pulled from a registry here)"
    continue
  fi
  current=$(docker image inspect -f '{{.Comment}}' "$name" 2>/dev/null || true)
  if [[ -n $current && $current != "$marker"* ]]; then
    echo "stand-ins: $name: an image that is not a stand-in is there; using it"
  elif [[ $current == "$comment" && -z ${LCM_STANDINS_REBUILD:-} ]]; then
    echo "stand-ins: $name: up to date"
  else
    todo+=("$name:$kind")
  fi
done
[[ ${#todo[@]} -gt 0 ]] || exit 0

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
services_image="lcm-standin-root:services"
roots=()
for item in "${todo[@]}"; do
  if [[ ${item##*:} == debian ]]; then roots+=(debian); else roots+=(services); fi
done
mapfile -t roots < <(printf '%s\n' "${roots[@]}" | sort -u)

# The two bootstraps wait mostly on dpkg and the disk, so they run side by side.
pids=()
for root in "${roots[@]}"; do
  if [[ $root == debian ]]; then target=debian:bookworm-slim; else target=$services_image; fi
  echo "stand-ins: bootstrapping the $root root file system"
  ( SECONDS=0
    bootstrap "$root" "$target" "$comment" >"$logs/$root" 2>&1
    echo "stand-ins: $root root file system imported in ${SECONDS} s" ) &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    failed=1
    echo "stand-ins: bootstrapping the ${roots[$i]} root file system FAILED; its log:" >&2
    cat "$logs/${roots[$i]}" >&2
  fi
done
[[ $failed == 0 ]] || exit 1

for item in "${todo[@]}"; do
  name=${item%:*} kind=${item##*:}
  [[ $kind == debian ]] && continue
  configure "$services_image" "$name" "$kind" "$comment"
  echo "stand-ins: $name: built"
done
# The stand-ins keep the root's layer; only its name goes.
if docker image inspect "$services_image" >/dev/null 2>&1; then docker rmi "$services_image" >/dev/null; fi
