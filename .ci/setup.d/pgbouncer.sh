#!/usr/bin/env bash
# PgBouncer (Debian's package) for .ci/pgbouncer-suite.sh: the PostgreSQL live-server and
# concurrency tests run through it in transaction pool mode. Idempotent: nothing to do when
# pgbouncer is already installed. Run as root before scripts/bootstrap (.ci/run does).
set -euo pipefail

if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
    echo "pgbouncer: already installed ($( (command -v pgbouncer || echo /usr/sbin/pgbouncer) ))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "pgbouncer: not installed, and installing it needs root (apt-get install pgbouncer)" >&2
    exit 1
fi

# Installing must not start a system PgBouncer on port 6432: the suite runs its own. Deny
# service starts for the duration of the install if nothing decides that already.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends pgbouncer; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends pgbouncer
fi
pgbouncer --version | head -n 1
