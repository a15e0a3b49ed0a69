#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 for the tests and prints its URL, the only
# thing this script writes to stdout:
#
#   export SHOP_TEST_POSTGRES_URL=$(bash .ci/postgres.sh)
#
# The cluster lives in a fresh temporary directory, listens on 127.0.0.1:55432
# (and on a unix socket in that directory), trusts every local connection and
# runs with fsync and synchronous_commit on, so the tests see the durability a
# real server gives. If something already listens on the port, the script
# assumes it is such a server and only prints the URL, so running it twice is
# harmless. Installs Debian's postgresql-15 first if it is missing (needs root).
set -euo pipefail

port=55432
url="postgres://postgres@127.0.0.1:${port}/shop_test?sslmode=disable"
bin=/usr/lib/postgresql/15/bin

# Everything but the URL goes to stderr: keep fd 3 for the URL.
exec 3>&1 1>&2

log() { echo "postgres.sh: $*"; }
listening() { (exec 4<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; }
done_url() { echo "$url" >&3; exit 0; }

# Two runs at once (two CI steps, say) take turns. The lock is released when
# this script exits. Commands that may leave a process running (the server, a
# package's post-install script) get fds 3 and 9 closed, or the caller's $(...)
# would wait for the server to exit and the lock would outlive the script.
exec 9>"${TMPDIR:-/tmp}/shop-postgres-${port}.lock"
flock 9

if listening; then
  log "something already listens on 127.0.0.1:${port}; using it"
  done_url
fi

if [[ ! -x "${bin}/initdb" ]]; then
  if [[ "$(id -u)" != 0 ]]; then
    log "${bin}/initdb is missing; install postgresql-15 (as root: apt-get install postgresql-15)"
    exit 1
  fi
  log "installing postgresql-15"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 3>&- 9>&-
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/shop-postgres.XXXXXX")"
# initdb refuses to run as root: as root, run the server as the postgres user.
as_owner=()
if [[ "$(id -u)" == 0 ]]; then
  chown postgres: "$dir"
  as_owner=(runuser -u postgres --)
fi

log "creating a cluster in ${dir}/data"
"${as_owner[@]}" "${bin}/initdb" -D "${dir}/data" -U postgres --auth=trust \
  --encoding=UTF8 --locale=C.UTF-8 >"${dir}/initdb.log" 2>&1 ||
  { cat "${dir}/initdb.log"; exit 1; }

log "starting it on 127.0.0.1:${port} (log: ${dir}/server.log)"
opts="-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=on -c synchronous_commit=on -c max_connections=200"
if ! "${as_owner[@]}" "${bin}/pg_ctl" -D "${dir}/data" -l "${dir}/server.log" -o "$opts" -w -t 60 start 3>&- 9>&-; then
  cat "${dir}/server.log" || true
  exit 1
fi

# Wait until the server accepts connections as the tests will make them, and
# create their database.
for _ in $(seq 1 100); do
  "${bin}/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres && break
  sleep 0.1
done
exists="$("${bin}/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -XAtq \
  -c "SELECT 1 FROM pg_database WHERE datname = 'shop_test'")"
if [[ "$exists" != 1 ]]; then
  "${bin}/createdb" -h 127.0.0.1 -p "$port" -U postgres shop_test
fi
for _ in $(seq 1 100); do
  "${bin}/psql" "$url" -XAtq -c 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.1
done
"${bin}/psql" "$url" -XAtq -c 'SELECT 1' >/dev/null

log "ready; stop it with: ${as_owner[*]} ${bin}/pg_ctl -D ${dir}/data stop"
done_url
