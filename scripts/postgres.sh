#!/usr/bin/env bash
# Throwaway PostgreSQL clusters for the tests and benchmarks. Debian's postgresql package
# provides the binaries (install-tools.sh installs it). A cluster lives in $TMPDIR, trusts local
# connections, and skips fsync: it holds nothing but test databases.
#
#   start      the plain cluster (ssl off) on $VSPHEREIPAM_TEST_PG_PORT (55432); prints its URL
#   start-ssl  a cluster configured like Debian's stock install: ssl = on with a self-signed
#              "snakeoil" certificate for "localhost" (port 55434 unless set). Prints its URL;
#              the certificate is <dir>/snakeoil.crt, an unrelated one <dir>/other.crt. Its
#              database tls_only accepts only TLS connections, plain_only only plain ones.
#   stop, restart
# `start` and `start-ssl` are idempotent.
set -euo pipefail
action=${1:-start}
if [ "$action" = start-ssl ]; then
  port=${VSPHEREIPAM_TEST_PG_PORT:-55434}
  dir=${TMPDIR:-/tmp}/vsphereipam-pg-ssl-$port
else
  port=${VSPHEREIPAM_TEST_PG_PORT:-55432}
  dir=${TMPDIR:-/tmp}/vsphereipam-pg-$port
  # stop and restart also serve the ssl cluster, by its port.
  if [ "$action" != start ] && [ -d "${TMPDIR:-/tmp}/vsphereipam-pg-ssl-$port" ]; then
    dir=${TMPDIR:-/tmp}/vsphereipam-pg-ssl-$port
  fi
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "PostgreSQL server binaries not found: run scripts/install-tools.sh (make test does)" >&2
  exit 1
fi
# initdb and postgres refuse to run as root.
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi

# A self-signed certificate shaped like Debian's snakeoil one (make-ssl-cert: CA:FALSE, the
# host name as CN and subjectAltName): $1 file stem, $2 host name.
snakeoil() {
  cat >"$1.cnf" <<CNF
[ req ]
distinguished_name = dn
prompt = no
x509_extensions = v3
[ dn ]
commonName = $2
[ v3 ]
basicConstraints = CA:FALSE
subjectAltName = DNS:$2
CNF
  openssl req -config "$1.cnf" -new -x509 -days 3650 -nodes -newkey rsa:2048 \
    -keyout "$1.key" -out "$1.crt" >/dev/null 2>&1
  chmod 0600 "$1.key"
}

init() {
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
}

run() {
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off $*" \
      start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  fi
}

case "$action" in
start)
  init
  run
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
start-ssl)
  fresh=0
  [ -f "$dir/data/PG_VERSION" ] || fresh=1
  init
  if [ "$fresh" = 1 ]; then
    snakeoil "$dir/snakeoil" localhost
    snakeoil "$dir/other" localhost
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"/snakeoil.* "$dir"/other.*
    chmod 0644 "$dir/snakeoil.crt" "$dir/other.crt"
    # Ahead of initdb's "host all all 127.0.0.1/32 trust".
    hba=$dir/data/pg_hba.conf
    {
      echo "hostnossl tls_only   all 127.0.0.1/32 reject"
      echo "hostssl   plain_only all 127.0.0.1/32 reject"
      cat "$hba"
    } >"$hba.new" && mv "$hba.new" "$hba"
    [ "$(id -u)" = 0 ] && chown postgres: "$hba"
  fi
  run -c ssl=on -c ssl_cert_file="$dir/snakeoil.crt" -c ssl_key_file="$dir/snakeoil.key"
  for db in tls_only plain_only; do
    "${as[@]}" "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
      || "${as[@]}" "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null
  done
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
  echo "usage: $0 start|start-ssl|stop|restart" >&2
  exit 2
  ;;
esac
