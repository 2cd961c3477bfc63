#!/bin/sh
# Entrypoint of the rabbitmq:<tag>-management stand-in (../build.sh): does
# what the official image does at start, as far as this stack relies on it.
set -eu

if [ "$1" = rabbitmq-server ] && [ "$(id -u)" = 0 ]; then
  # RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS, as the official image
  # honours them: RabbitMQ creates this user (an administrator on vhost /)
  # instead of guest, when its data directory is new.
  conf=/etc/rabbitmq/rabbitmq.conf
  cp /etc/rabbitmq/10-defaults.conf "$conf"
  if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then
    printf 'default_user = %s\n' "$RABBITMQ_DEFAULT_USER" >>"$conf"
  fi
  if [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then
    printf 'default_pass = %s\n' "$RABBITMQ_DEFAULT_PASS" >>"$conf"
  fi
  # A new named volume is owned by root; the node runs as rabbitmq.
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
  # Debian's /usr/sbin/rabbitmq-server sends the node's output to a file;
  # the server script itself leaves it on standard output, as in the
  # official image.
  export HOME=/var/lib/rabbitmq
  shift
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
    /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi

exec "$@"
