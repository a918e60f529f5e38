#!/usr/bin/env bash
# chromium (Debian's package) for tests/test_admin_browser.py: Playwright (from PyPI, in .venv)
# drives the system browser through executable_path; Playwright's own browser download is not
# used. Idempotent: nothing to do when chromium is already installed. Run as root before
# scripts/bootstrap (.ci/run does).
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: already installed ($(command -v chromium))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium: not installed, and installing it needs root (apt-get install chromium)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The package list may be stale on a fresh machine: update once if the first try fails.
if ! apt-get install -y -q --no-install-recommends chromium >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
echo "chromium: installed ($(command -v chromium))"
