#!/bin/sh
# Entrypoint of the redis:<tag> stand-in (../build.sh): does what the
# official image does at start, as far as this stack relies on it.
set -eu

# `docker run redis:<tag> --appendonly yes` means redis-server --appendonly yes.
case "$1" in
  -*) set -- redis-server "$@" ;;
esac

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  # A new named volume is owned by root; the server runs as redis.
  find . ! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$1" = redis-server ]; then
  # The official image's server starts with protected mode off, so that
  # other containers may connect without a password; Debian's would refuse
  # them. Options given after it still win.
  shift
  set -- redis-server --protected-mode no "$@"
fi

exec "$@"
