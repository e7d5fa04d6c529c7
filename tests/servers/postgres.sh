#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (Debian's `postgresql`):
# initdb in DIR, listening on 127.0.0.1 on a free port and on a socket in
# DIR, trust authentication (nothing but this machine's tests reach it),
# run as the unprivileged `postgres` user because the tests run as root.
#   tests/servers/postgres.sh start DIR   prints the DSN (host=... port=...)
#   tests/servers/postgres.sh stop DIR    stops it (fast shutdown)
#   tests/servers/postgres.sh restart DIR stops and starts it on its port
# The DSN names the database `kiln`, created at start. Tests run it with
# fsync off (their data is thrown away); PG_FSYNC=on keeps PostgreSQL's
# durable default, for benchmarks.
set -eu
cmd=${1:?usage: postgres.sh start|stop|restart DIR}
dir=${2:?usage: postgres.sh start|stop|restart DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "postgres.sh: no PostgreSQL server (install Debian's postgresql)" >&2
    exit 3
fi
user=postgres
if ! id "$user" >/dev/null 2>&1; then
    echo "postgres.sh: no \"$user\" user (Debian's postgresql creates it)" >&2
    exit 3
fi
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}
data=$dir/data
case $cmd in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown "$user" "$dir"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 \
        --no-instructions >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    echo "$port" >"$dir/port"
    [ "$(id -u)" = 0 ] && chown "$user" "$dir/port"
    ;;
stop)
    [ -d "$data" ] && as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop \
        >/dev/null 2>&1 || true
    exit 0
    ;;
restart)
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
*)
    echo "postgres.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
port=$(cat "$dir/port")
as_pg "$bin/pg_ctl" -D "$data" -w -t 60 -l "$dir/server.log" \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=${PG_FSYNC:-off} -c max_connections=200" \
    start >/dev/null || {
    cat "$dir/server.log" >&2
    exit 1
}
if [ "$cmd" = start ]; then
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres kiln
fi
echo "host=127.0.0.1 port=$port user=postgres dbname=kiln"
