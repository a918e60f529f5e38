#!/usr/bin/env bash
# nginx (Debian's package) for tests/test_deployment.py: the reference deployment in deploy/
# (nginx buffering in front of gunicorn) is started and checked there. Idempotent: nothing to do
# when nginx is already installed. Run as root before scripts/bootstrap (.ci/run does).
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    echo "nginx: already installed ($( (command -v nginx || echo /usr/sbin/nginx) ))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "nginx: not installed, and installing it needs root (apt-get install nginx-light)" >&2
    exit 1
fi

# Installing must not start a system nginx on port 80: the test runs its own. Debian's
# maintainer scripts ask /usr/sbin/policy-rc.d; if there is none, deny service starts for the
# duration of the install only.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
# nginx-light: the smallest flavour with the modules deploy/nginx.conf uses (core http, proxy,
# realip); Debian releases without it (trixie) ship them in "nginx".
if ! apt-get install -y -q --no-install-recommends nginx-light; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends nginx-light \
        || apt-get install -y -q --no-install-recommends nginx
fi
nginx -v
