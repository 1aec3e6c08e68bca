#!/usr/bin/env bash
# A PostgreSQL server of the tests' own, in a folder: never the cluster Debian's package may have
# made and started on install (port 5432), so nothing here depends on that one.
#   postgres_server.sh start DIR    initdb into DIR/data when needed and start the server; a fresh
#                                   role and database `llmassist` each time it was not running
#   postgres_server.sh stop DIR     stop it (fast shutdown); DIR stays, with its log
#   postgres_server.sh restart DIR  stop and start it again on the same port (fast shutdown: the
#                                   tests' connections break as in a real restart)
#   postgres_server.sh status DIR   exit 0 and print the URL when running, exit 3 when not
# A second start while it runs does nothing; every command may be run again.
#
# What the server is: PostgreSQL from /usr/lib/postgresql/<version>/bin (PG_BINDIR overrides),
# run as an unprivileged user (as root: the `postgres` user, who gets DIR; otherwise the current
# user), on 127.0.0.1 only at a port that was free, its unix socket in DIR, fsync and
# synchronous_commit at their defaults (on: the benchmarks measure with them). Connections over
# TCP need the password (scram-sha-256); the unix socket, reachable only through DIR (mode 0700),
# is trusted, for this script's own administration. As root, if `postgres` cannot reach DIR, the
# server's own files are in a folder in /tmp that DIR/server points to.
#
# TLS is on, with a certificate of its own for 127.0.0.1 (made with openssl at the first start);
# connections may use it or not (libpq's default sslmode, prefer, does).
#
# What it leaves in DIR: url (postgresql://llmassist@127.0.0.1:PORT/llmassist, no password),
# password (mode 0600), root.crt (the server's certificate, to verify it with: sslrootcert),
# log (the server's log), data/ (the cluster).
set -euo pipefail

usage() {
  echo "usage: postgres_server.sh start|stop|restart|status DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
command="$1"
case "$command" in start | stop | restart | status) ;; *) usage ;; esac
mkdir -p "$2"
dir="$(cd "$2" && pwd)"

fail() {
  echo "postgres_server.sh: $*" >&2
  exit 1
}

bindir="${PG_BINDIR:-}"
if [ -z "$bindir" ]; then
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/postgres" ] && bindir="$candidate"
  done
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
  fail "no PostgreSQL server found in /usr/lib/postgresql/*/bin (scripts/setup-deps.sh installs postgresql-15), or set PG_BINDIR"
fi

# The server's own files (data/, log, the socket) are in `home`: DIR itself, or, when the server
# runs as `postgres` and cannot reach DIR (a folder above it, such as /root, is closed to other
# users), a folder in /tmp that DIR/server points to.
home="$dir"
# The server refuses to run as root: as root, every server command runs as `postgres`.
run_as_server=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || fail "running as root, but there is no user postgres to run the server as"
  run_as_server=(runuser -u postgres --)
  chown postgres: "$dir"
  if ! runuser -u postgres -- test -x "$dir"; then
    if [ ! -d "$dir/server/." ]; then  # missing, or its folder was cleaned from /tmp
      rm -f "$dir/server"
      ln -s "$(mktemp -d /tmp/llmassist-postgres.XXXXXX)" "$dir/server"
    fi
    home="$(readlink -f "$dir/server")"
    chown postgres: "$home"
    chmod 0700 "$home"
    ln -sfn "$home/log" "$dir/log"
  fi
  touch "$home/log"
  chown postgres: "$home/log"
fi
chmod 0700 "$dir"
data="$home/data"
log="$home/log"
# Whatever PG* variables the caller has (a PGHOST, a PGPASSWORD) are not for this server.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^PG' || true)
cd "$home"

server() { "${run_as_server[@]}" "$@"; }
# The lock's descriptor stays here: a server that inherited it would hold the lock for its life.
pg_ctl() { server "$bindir/pg_ctl" -D "$data" "$@" 9>&-; }
running() { [ -f "$data/PG_VERSION" ] && pg_ctl status >/dev/null 2>&1; }
port() { sed -n "s/^port = \([0-9]*\)$/\1/p" "$data/postgresql.llmassist.conf"; }

# One command at a time on one folder: a start and a stop from two test runs do not interleave.
exec 9>"$dir/.lock"
flock 9

free_port() {
  local python=python3
  [ -x /usr/bin/python3 ] && python=/usr/bin/python3
  "$python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# The settings of ours, in a file of their own that postgresql.conf includes; a new port each
# time the server is started from stopped (the last one may have been taken since).
write_settings() {
  server tee "$data/postgresql.llmassist.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $(free_port)
unix_socket_directories = '$home'
password_encryption = 'scram-sha-256'
# The stores' pools (8 connections each) of many tests running at once.
max_connections = 300
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
}

# The server's certificate, self-signed for 127.0.0.1, when it has none yet; a copy in DIR for
# the tests that verify it.
make_certificate() {
  if [ ! -f "$data/server.crt" ]; then
    server openssl req -new -x509 -days 3650 -nodes -subj "/CN=127.0.0.1" \
      -addext "subjectAltName=IP:127.0.0.1" -keyout "$data/server.key" -out "$data/server.crt" \
      >>"$log" 2>&1 || fail "openssl could not make the server's certificate; see $log"
    server chmod 0600 "$data/server.key"
  fi
  cp "$data/server.crt" "$dir/root.crt"
}

init_cluster() {
  rm -rf "$data"
  server mkdir "$data"
  # --no-sync: initdb's own final flush only; the server runs with fsync on.
  server "$bindir/initdb" -D "$data" -U postgres --encoding=UTF8 --locale=C --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >>"$log" 2>&1 ||
    fail "initdb failed; see $log"
  server tee "$data/pg_hba.conf" >/dev/null <<'EOF'
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  scram-sha-256
EOF
  echo "include 'postgresql.llmassist.conf'" | server tee -a "$data/postgresql.conf" >/dev/null
}

psql_admin() {
  server "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$home" -p "$(port)" -U postgres -d postgres "$@"
}

# A new role and database: each start from stopped gives the tests an empty database. The
# password never reaches the server's log: the session logs no statements, not even failed ones.
create_database() {
  local password
  password="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
  psql_admin -v password="$password" >>"$log" 2>&1 <<'EOF' || fail "could not create the role and database llmassist; see $log"
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
DROP DATABASE IF EXISTS llmassist WITH (FORCE);
DROP ROLE IF EXISTS llmassist;
CREATE ROLE llmassist LOGIN PASSWORD :'password';
CREATE DATABASE llmassist OWNER llmassist;
EOF
  (umask 077 && printf '%s' "$password" >"$dir/password.new" && mv "$dir/password.new" "$dir/password")
  printf 'postgresql://llmassist@127.0.0.1:%s/llmassist' "$(port)" >"$dir/url.new"
  mv "$dir/url.new" "$dir/url"
}

start() {
  running && return 0
  rm -f "$dir/url" "$dir/password"
  [ -f "$data/PG_VERSION" ] || init_cluster
  make_certificate
  # A port taken between the choice and the bind: choose again.
  local _
  for _ in 1 2 3 4 5; do
    write_settings
    if pg_ctl -l "$log" -w -t 60 start >/dev/null 2>&1; then
      create_database
      return 0
    fi
  done
  fail "the server did not start; see $log"
}

stop() {
  [ -f "$data/PG_VERSION" ] || return 0
  if running; then
    pg_ctl -m fast -w -t 60 stop >/dev/null 2>&1 || fail "the server did not stop; see $log"
  fi
  rm -f "$dir/url" "$dir/password"
}

restart() {
  running || fail "the server in $dir is not running"
  pg_ctl -l "$log" -m fast -w -t 60 restart >/dev/null 2>&1 || fail "the server did not restart; see $log"
}

status() {
  if running && [ -f "$dir/url" ]; then
    cat "$dir/url"
    echo
    return 0
  fi
  echo "not running"
  return 3
}

"$command"
