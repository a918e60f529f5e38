"""Reconcile benchmark: ``.venv/bin/python bench/reconcile_bench.py [--users N ...]``.

Starts the fake OpenIM REST server (``python -m openim_sync.testing.fake_openim``) in its own
process with a generated state (default: 10,000 users, 1,000 groups, 30,000 memberships, 20,000
friendships), reconciles an empty mirror from it into a fresh PostgreSQL database (or SQLite with
``--sqlite``), then reconciles again with nothing changed, and prints the time and the requests
per endpoint of both runs (the server's own counts).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/openim_sync_reconcile_bench"


def start_fake(args):
    populate = (
        f"users={args.users},groups={args.groups},members={args.members},friends={args.friends}"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openim_sync.testing.fake_openim",
            "--port",
            "0",
            "--populate",
            populate,
            "--seed",
            "0",
            "--version",
            args.version,
            *(["--working-incremental-blacks"] if args.working_incremental_blacks else []),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the fake server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def fake_requests(url):
    with urllib.request.urlopen(f"{url}/__fake__/requests", timeout=10) as response:
        return json.load(response)


def reset_counts(url):
    request = urllib.request.Request(f"{url}/__fake__/reset_counts", b"{}", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def setup_django(args, url):
    if args.sqlite:
        os.environ.pop("DATABASE_URL", None)
        os.environ["SQLITE_PATH"] = str(Path(args.sqlite).resolve())
        Path(args.sqlite).unlink(missing_ok=True)
    else:
        os.environ["DATABASE_URL"] = args.database
        import psycopg

        server, name = args.database.rsplit("/", 1)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.OPENIM_SYNC = {
        **settings.OPENIM_SYNC,
        "OPENIM_API_URL": url,
        "OPENIM_ADMIN_USER_ID": "openim-sync",
        "OPENIM_API_SECRET": "openIM123",
    }
    from openim_sync.conf import app_settings

    app_settings.reload()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def one_run(url, label):
    from openim_sync.models import Friend, GroupMember, ImGroup, ImUser
    from openim_sync.reconcile import reconcile

    reset_counts(url)
    started = time.perf_counter()
    run = reconcile("openim")
    seconds = time.perf_counter() - started
    requests = fake_requests(url)
    rows = {m.__name__: m.objects.count() for m in (ImUser, ImGroup, GroupMember, Friend)}
    print(f"\n{label}: {seconds:.1f} s, status {run.status}, {sum(requests.values())} requests")
    print(f"  rows: {rows}")
    print(
        "  changed: "
        + ", ".join(f"{k} {v.get('changed', 0)}" for k, v in run.counts.items() if k != "requests")
    )
    for endpoint, count in sorted(requests.items(), key=lambda item: -item[1]):
        print(f"  {count:7d}  {endpoint}")
    if run.errors:
        print("  errors:", run.errors[:5])
    return seconds, requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--members", type=int, default=30_000)
    parser.add_argument("--friends", type=int, default=20_000)
    parser.add_argument("--version", default="3.8.3", help="the fake server's OpenIM version")
    parser.add_argument(
        "--working-incremental-blacks",
        action="store_true",
        help="the fake serves blocks from a version log, as OpenIM's API is documented (no "
        "release implements it: v3.8.0-3.8.2 answer a stub, v3.8.3 errCode 12)",
    )
    parser.add_argument("--database", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--sqlite", metavar="PATH", help="use an SQLite file instead")
    args = parser.parse_args()
    proc, url = start_fake(args)
    try:
        setup_django(args, url)
        first, first_requests = one_run(url, "first run (empty mirror)")
        second, second_requests = one_run(url, "second run (nothing changed)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ratio = sum(second_requests.values()) / max(sum(first_requests.values()), 1)
    print(f"\nfirst {first:.1f} s, second {second:.1f} s; second/first requests = {ratio:.2f}")


if __name__ == "__main__":
    main()
