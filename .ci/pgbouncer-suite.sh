#!/usr/bin/env bash
# The PostgreSQL live-server and concurrency tests through PgBouncer in transaction pool mode
# (issue 13, point 3): every connection the tests, their live servers and their worker processes
# open goes to a PgBouncer that shares a few server connections between all clients, one
# transaction at a time. Anything the app kept in a session (session advisory locks, SET, LISTEN,
# prepared statements, WITH HOLD cursors) would leak between clients or be lost here.
#
#   .ci/pgbouncer-suite.sh                  # the default test files (below)
#   .ci/pgbouncer-suite.sh tests/test_x.py  # other pytest arguments instead
#
# Environment:
#   PGBOUNCER_UPSTREAM_URL  the PostgreSQL server (default: CI_DATABASE_URL, else
#                           postgres://postgres@127.0.0.1:5432); its database name is ignored
#   PGBOUNCER_SUITE_DB      the database name the tests are given (default openim_sync_pgbouncer;
#                           pytest-django creates and uses test_<name>, dropped at the end)
#   PGBOUNCER_POOL_SIZE     server connections per database (default 4: few, so they are shared)
#
# Needs Debian's pgbouncer (.ci/setup.d/pgbouncer.sh installs it) and .venv (scripts/bootstrap).
# PgBouncer gets its listening socket already bound to a free port (systemd socket activation:
# LISTEN_FDS), so there is no pick-a-port-then-bind race; it refuses to run as root, so as root
# it runs as the postgres user (PGBOUNCER_USER).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
UPSTREAM=${PGBOUNCER_UPSTREAM_URL:-${CI_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}}
NAME=${PGBOUNCER_SUITE_DB:-openim_sync_pgbouncer}
POOL_SIZE=${PGBOUNCER_POOL_SIZE:-4}
if [ "$#" -eq 0 ]; then
    # The live-server, parallel-client, worker-process and outage tests, and the reference
    # deployment (nginx -> gunicorn -> PgBouncer; skipped without nginx).
    set -- tests/test_concurrency.py tests/test_deferred.py tests/test_faults.py \
        tests/test_deployment.py
fi
# deploy/settings.py (the deployment test's gunicorn) turns Django's server-side cursors off with
# this, as docs/deployment.md says to behind PgBouncer. The test processes' own settings
# (project/) do not read it: they run with Django's default, and pass because the app declares
# no cursors.
export DATABASE_DISABLE_SERVER_SIDE_CURSORS=1

PGBOUNCER=$(command -v pgbouncer || true)
[ -n "$PGBOUNCER" ] || [ ! -x /usr/sbin/pgbouncer ] || PGBOUNCER=/usr/sbin/pgbouncer
if [ -z "$PGBOUNCER" ]; then
    echo "pgbouncer-suite: pgbouncer is not installed (run .ci/setup.d/pgbouncer.sh as root)" >&2
    exit 1
fi
[ -x "$PY" ] || { echo "pgbouncer-suite: no $PY (run scripts/bootstrap)" >&2; exit 1; }

# host, port, user and password of the upstream server, as shell assignments
eval "$("$PY" - "$UPSTREAM" <<'EOF'
import shlex, sys
from urllib.parse import unquote, urlsplit
u = urlsplit(sys.argv[1])
for key, value in (("UP_HOST", u.hostname or "127.0.0.1"), ("UP_PORT", u.port or 5432),
                   ("UP_USER", unquote(u.username or "postgres")),
                   ("UP_PASSWORD", unquote(u.password or ""))):
    print(f"{key}={shlex.quote(str(value))}")
EOF
)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgbouncer-suite.XXXXXX")
BOUNCER_PID=""
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    RUN_AS=(-u "${PGBOUNCER_USER:-postgres}")
    chown "${PGBOUNCER_USER:-postgres}" "$TMP"
fi

# psql-free SQL against the upstream server directly (not through PgBouncer).
upstream_sql() {
    UP_HOST=$UP_HOST UP_PORT=$UP_PORT UP_USER=$UP_USER UP_PASSWORD=$UP_PASSWORD "$PY" - "$1" <<'EOF'
import os, sys, psycopg
with psycopg.connect(host=os.environ["UP_HOST"], port=os.environ["UP_PORT"],
                     user=os.environ["UP_USER"], password=os.environ["UP_PASSWORD"] or None,
                     dbname="postgres", autocommit=True) as conn:
    conn.execute(sys.argv[1])
EOF
}

drop_test_db() {
    upstream_sql "DROP DATABASE IF EXISTS \"test_$NAME\" WITH (FORCE)"
}

cleanup() {
    local status=$?
    if [ -n "$BOUNCER_PID" ] && kill -0 "$BOUNCER_PID" 2>/dev/null; then
        kill -INT "$BOUNCER_PID" 2>/dev/null || true  # SIGINT: PgBouncer's safe shutdown
        for _ in $(seq 50); do kill -0 "$BOUNCER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$BOUNCER_PID" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$TMP/pgbouncer.log" ]; then
        echo "=== pgbouncer-suite: the last lines of PgBouncer's log ($TMP kept)" >&2
        tail -n 40 "$TMP/pgbouncer.log" >&2
    fi
    drop_test_db || echo "pgbouncer-suite: could not drop test_$NAME" >&2
    [ "$status" -ne 0 ] || rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT

printf '"%s" "%s"\n' "$UP_USER" "$UP_PASSWORD" > "$TMP/userlist.txt"
cat > "$TMP/pgbouncer.ini" <<EOF
[databases]
; every database name, so pytest-django's test_$NAME (and "postgres", where it issues
; CREATE DATABASE) go through PgBouncer too
* = host=$UP_HOST port=$UP_PORT
; the transaction-mode canary below: one server connection for every client of this alias
pgbouncer_canary = host=$UP_HOST port=$UP_PORT dbname=postgres pool_size=1

[pgbouncer]
pool_mode = transaction
default_pool_size = $POOL_SIZE
reserve_pool_size = 0
max_client_conn = 400
auth_type = trust
auth_file = $TMP/userlist.txt
admin_users = $UP_USER
; the socket comes from the launcher (LISTEN_FDS); no Unix socket
listen_addr = 127.0.0.1
listen_port = 6432
unix_socket_dir =
logfile = $TMP/pgbouncer.log
pidfile =
log_connections = 0
log_disconnections = 0
EOF
[ "${#RUN_AS[@]}" -eq 0 ] || chown "${PGBOUNCER_USER:-postgres}" "$TMP"/*

drop_test_db

# Bind 127.0.0.1:0, write the port down, then become PgBouncer with that socket as fd 3
# (same pid, so LISTEN_PID is PgBouncer's own).
"$PY" - "$TMP/port" "$PGBOUNCER" "${RUN_AS[@]}" "$TMP/pgbouncer.ini" <<'EOF' >"$TMP/pgbouncer.out" 2>&1 &
import os, socket, sys
sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
if sock.fileno() != 3:
    os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(sock.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.environ.pop("LISTEN_FDNAMES", None)
os.execv(sys.argv[2], sys.argv[2:])
EOF
BOUNCER_PID=$!

for _ in $(seq 100); do
    [ -s "$TMP/port" ] && break
    kill -0 "$BOUNCER_PID" 2>/dev/null || break
    sleep 0.1
done
[ -s "$TMP/port" ] || { echo "pgbouncer-suite: the launcher did not start" >&2; exit 1; }
PORT=$(cat "$TMP/port")

# Ready when a query through it answers; a PgBouncer that exits fails with its log (see cleanup).
"$PY" - "$PORT" "$BOUNCER_PID" "$UP_USER" <<'EOF'
import os, sys, time, psycopg
port, pid, user = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 30
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("pgbouncer-suite: PgBouncer exited during startup")
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="postgres",
                             connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        break
    except psycopg.OperationalError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"pgbouncer-suite: PgBouncer did not answer on port {port}: {exc}")
        time.sleep(0.2)
EOF
echo "=== pgbouncer-suite: PgBouncer $("$PGBOUNCER" --version | head -n1 | awk '{print $2}') on 127.0.0.1:$PORT, pool_mode=transaction, $POOL_SIZE server connections per database"

# Canary: this really is transaction pooling. A session-level SET from one client is seen by
# another client (they share the alias's single server connection), so anything the app left in
# a session would leak too; parameters PgBouncer tracks (TimeZone, which Django sets on every new
# connection when the server's differs) are restored per client.
"$PY" - "$PORT" "$UP_USER" <<'EOF'
import sys, psycopg
port, user = int(sys.argv[1]), sys.argv[2]
def connect():
    return psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="pgbouncer_canary",
                           autocommit=True)
with connect() as a, connect() as b:
    a.execute("SET statement_timeout = '4321s'")
    leaked = b.execute("SHOW statement_timeout").fetchone()[0]
    assert leaked == "4321s", f"not transaction pooling: another client saw {leaked!r}"
    b.execute("RESET statement_timeout")
    a.execute("SET TIME ZONE 'Asia/Shanghai'")
    other = b.execute("SHOW TimeZone").fetchone()[0]
    mine = a.execute("SHOW TimeZone").fetchone()[0]
    assert other != "Asia/Shanghai" and mine == "Asia/Shanghai", (other, mine)
print("=== pgbouncer-suite: canary: session SETs leak between clients (transaction pooling); "
      "TimeZone is kept per client")
EOF

URL="postgres://$UP_USER@127.0.0.1:$PORT/$NAME"
[ -z "$UP_PASSWORD" ] || URL="postgres://$UP_USER:$UP_PASSWORD@127.0.0.1:$PORT/$NAME"
echo "=== pgbouncer-suite: DATABASE_URL=postgres://$UP_USER@127.0.0.1:$PORT/$NAME pytest $*"
# --reuse-db: pytest-django would DROP the test database through PgBouncer, whose idle server
# connections to it make that fail; cleanup drops it directly instead.
DATABASE_URL="$URL" "$PY" -m pytest -q -p no:cacheprovider --reuse-db "$@"

# The tests' traffic went through PgBouncer: its per-database counters (admin console, simple
# query protocol), the test database's and any other the tests created.
"$PY" - "$PORT" "$UP_USER" <<'EOF'
import sys, psycopg
port, user = int(sys.argv[1]), sys.argv[2]
with psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="pgbouncer",
                     autocommit=True) as admin:
    result = admin.pgconn.exec_(b"SHOW STATS")
    names = [result.fname(i).decode() for i in range(result.nfields)]
    rows = [dict(zip(names, (result.get_value(r, c).decode() for c in range(result.nfields))))
            for r in range(result.ntuples)]
used = {row["database"]: row for row in rows
        if row["database"] not in ("pgbouncer", "pgbouncer_canary", "postgres")
        and int(row["total_xact_count"])}
if not used:
    sys.exit("pgbouncer-suite: no test transactions went through PgBouncer")
for name, row in sorted(used.items()):
    print(f"=== pgbouncer-suite: through PgBouncer on {name}: {row['total_xact_count']} "
          f"transactions, {row['total_query_count']} queries")
EOF
