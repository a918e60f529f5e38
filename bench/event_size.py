"""Bytes per stored ignored message, per ``IGNORED_EVENTS`` mode, on PostgreSQL.

    .venv/bin/python bench/event_size.py                 # 10,000 messages per mode, ~1 minute
    .venv/bin/python bench/event_size.py --events 2000 --modes summary

Recreates its own database (``openim_sync_eventsize`` on 127.0.0.1; never the test suite's or the
benchmark's), migrates it, then for each mode empties the event and counter tables and posts
``--events`` message callbacks through the real view (Django's test client: the app's routing,
authentication, pipeline and INSERT), built from the bundled samples of
``callbackAfterSendSingleMsgCommand`` and ``callbackAfterSendGroupMsgCommand`` with their
``?key=`` query and Go's headers, with varied ids and message texts. It reports
``pg_total_relation_size`` of the event table plus the counter table, over the number of
messages (heap, indexes and TOAST apart), and in full mode the average stored size of each large
column (``pg_column_size``). "full" is what every version before ``IGNORED_EVENTS`` stored.
"""

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
SAMPLES = ROOT / "openim_sync" / "samples" / "openim"
COMMANDS = ("callbackAfterSendSingleMsgCommand", "callbackAfterSendGroupMsgCommand")
EVENT_TABLE = "openim_sync_callbackevent"
COUNT_TABLE = "openim_sync_ignoredeventcount"
WORDS = ["hello", "ok", "see you at 5", "👍", "好的", "meeting moved to room 3", "lol", "thanks!"]


def go_json(body):
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (text + "\n").encode()


def messages(count, seed=1):
    """``count`` (command, body bytes, key, operation id) like OpenIM's message callbacks."""
    rng = random.Random(seed)
    samples = {c: json.loads((SAMPLES / f"{c}.json").read_text()) for c in COMMANDS}
    for n in range(count):
        command = COMMANDS[n % 2]
        body = dict(samples[command])
        op = f"{1751450123456 + n}-{rng.getrandbits(16):04x}"
        body.update(
            sendID=f"u{rng.randrange(100000):06d}",
            serverMsgID=f"{rng.getrandbits(128):032x}",
            clientMsgID=f"{rng.getrandbits(128):032x}",
            operationID=op,
            senderNickname=rng.choice(["Alice", "Bob", "Chen Wei", "Émile", "Jun 测试"]),
            sendTime=1751450140123 + n,
            createTime=1751450140001 + n,
            content=json.dumps({"content": " ".join(rng.choices(WORDS, k=rng.randrange(1, 6)))}),
        )
        if "recvID" in body:
            body["recvID"] = f"u{rng.randrange(100000):06d}"
        else:
            body["groupID"] = str(3318432212 + rng.randrange(5000))
        key = {
            "sendID": body["sendID"],
            "recvID": body.get("recvID", ""),
            "groupID": body.get("groupID", ""),
        }
        key = base64.b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()
        yield command, go_json(body), key.replace("=", "%3D"), op


def sizes(cursor, count):
    cursor.execute(
        "SELECT pg_total_relation_size(%s) + pg_total_relation_size(%s), "
        "pg_relation_size(%s) + pg_relation_size(%s), pg_indexes_size(%s) + pg_indexes_size(%s)",
        [EVENT_TABLE, COUNT_TABLE] * 3,
    )
    total, heap, indexes = cursor.fetchone()
    cursor.execute(f"SELECT count(*) FROM {EVENT_TABLE}")
    (rows,) = cursor.fetchone()
    cursor.execute(f"SELECT count(*), coalesce(sum(count), 0) FROM {COUNT_TABLE}")
    counters, counted = cursor.fetchone()
    return {
        "messages": count,
        "event_rows": rows,
        "counter_rows": counters,
        "counted": int(counted),
        "total": total,
        "heap": heap,
        "indexes": indexes,
        "toast": total - heap - indexes,
    }


def columns(cursor):
    cursor.execute(
        "SELECT avg(pg_column_size(body)), avg(pg_column_size(payload)), "
        "avg(pg_column_size(headers)), avg(pg_column_size(query)), avg(pg_column_size(e.*)) "
        f"FROM {EVENT_TABLE} e"
    )
    return dict(
        zip(
            ("body", "payload", "headers", "query", "row"),
            map(float, cursor.fetchone()),
            strict=True,
        )
    )


def measure(modes, count):
    import django
    from django.db import connection
    from django.test import Client, override_settings

    django.setup()
    from django.conf import settings

    client = Client()
    results = {}
    for mode in modes:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {EVENT_TABLE}, {COUNT_TABLE} RESTART IDENTITY CASCADE")
            cursor.execute("SELECT pg_total_relation_size(%s) + pg_total_relation_size(%s)",
                           [EVENT_TABLE, COUNT_TABLE])  # fmt: skip
            (empty,) = cursor.fetchone()
        t0 = time.perf_counter()
        with override_settings(OPENIM_SYNC={**settings.OPENIM_SYNC, "IGNORED_EVENTS": mode}):
            for command, body, key, op in messages(count):
                response = client.generic(
                    "POST",
                    f"/openim/callback/{command}?key={key}",
                    body,
                    content_type="application/json; charset=utf-8",
                    headers={
                        "operationID": op,
                        "User-Agent": "Go-http-client/1.1",
                        "Accept-Encoding": "gzip",
                    },
                )
                if response.status_code != 200 or b'"errCode":0' not in response.content.replace(
                    b" ", b""
                ):
                    raise SystemExit(f"{mode}: {response.status_code} {response.content[:200]!r}")
        wall = time.perf_counter() - t0
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {EVENT_TABLE}")
            result = sizes(cursor, count)
            result["empty"] = empty
            result["seconds"] = wall
            if mode == "full":
                result["columns"] = columns(cursor)
        results[mode] = result
        print(
            f"{mode:8} {count:,} messages in {wall:.1f}s: "
            f"{(result['total'] - empty) / count:,.0f} bytes/message",
            file=sys.stderr,
        )
    return results


def render(results, command):
    out = [
        f"`{command}`",
        "",
        "| `IGNORED_EVENTS` | messages | event rows | counter rows | total (MiB) | heap | indexes "
        "| TOAST | **bytes/message** |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, r in results.items():
        per = (r["total"] - r["empty"]) / r["messages"]
        out.append(
            f"| `{mode}` | {r['messages']:,} | {r['event_rows']:,} | {r['counter_rows']:,} | "
            f"{r['total'] / 2**20:.2f} | {r['heap'] / r['messages']:,.0f} | "
            f"{r['indexes'] / r['messages']:,.0f} | {r['toast'] / r['messages']:,.0f} | "
            f"**{per:,.0f}** |"
        )
    if "full" in results:
        c = results["full"]["columns"]
        out += [
            "",
            "Full mode, average stored size per row (`pg_column_size`, bytes): "
            + ", ".join(f"{name} {value:,.0f}" for name, value in c.items()),
        ]
    out.append("")
    out.append(
        "bytes/message = (pg_total_relation_size of the event and counter tables after the run "
        "- the same for the empty tables) / messages; heap, indexes and TOAST per message."
    )
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=10_000, help="messages per mode")
    p.add_argument("--modes", default="full,summary,count")
    p.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--database-name", default="openim_sync_eventsize")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)
    if not args.database_url.startswith(("postgres://postgres@127.0.0.1", "postgres://127.0.0.1")):
        p.error("only PostgreSQL on 127.0.0.1")
    if args.database_name.startswith(("openim_sync_a", "openim_sync_bench", "test_")):
        p.error("that database belongs to someone else")
    modes = args.modes.split(",")
    import psycopg

    base = args.database_url.rstrip("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.database_name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{args.database_name}"')
    env = {
        **os.environ,
        "DATABASE_URL": f"{base}/{args.database_name}",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DEBUG": "0",
        # The deliveries are unsigned OpenIM ones; the example project's defaults otherwise.
        "OPENIM_SYNC_SECRETS": "",
    }
    subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    results = measure(modes, args.events)
    command = "bench/event_size.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(render(results, command.strip()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
