#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks: `start` (idempotent; prints the
# admin URL) or `stop`. Debian's postgresql package provides the binaries (install-tools.sh
# installs it). The cluster lives in $TMPDIR, trusts local connections, and skips fsync: it
# holds nothing but test databases.
set -euo pipefail
port=${VSPHEREIPAM_TEST_PG_PORT:-55432}
dir=${TMPDIR:-/tmp}/vsphereipam-pg-$port
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "PostgreSQL server binaries not found: run scripts/install-tools.sh (make test does)" >&2
  exit 1
fi
# initdb and postgres refuse to run as root.
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi

case "${1:-start}" in
start)
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  fi
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  if [ -f "$dir/data/PG_VERSION" ]; then
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  ;;
restart)
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 restart >/dev/null
  ;;
*)
  echo "usage: $0 start|stop|restart" >&2
  exit 2
  ;;
esac
