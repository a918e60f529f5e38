"""Bench stage ``prune``: ``openim_prune`` over N stored events while a load client sends callbacks.

    .venv/bin/python bench/run.py --stages prune                       # 10^7 events (long)
    .venv/bin/python bench/run.py --stages prune --prune-events 100000 --prune-window 4

1. **Fill** the event table with ``--prune-events`` rows by ``INSERT ... SELECT generate_series``
   (in chunks of a million), sized like the real thing: 60 % message callbacks stored in full
   (``ignored``, the bundled samples' bodies), 35 % state changes (``processed``), 2.5 %
   ``rejected``, 1.5 % ``failed`` (with a traceback), 1 % never processed (``received``), with
   headers, query and subjects as the receiver stores them; ids follow ``received_at``, spread
   evenly over the last ``10 x --prune-days`` days. ``--prune-references`` of the old
   ``processed`` events (default one in 200 events) are the ``last_event`` of a mirror row (block
   list rows, a table the load never writes). Then ``VACUUM ANALYZE``, like autovacuum would have.
2. **Without a prune**: the inline receiver under gunicorn (the load stage's server and load
   generator, ``--prune-concurrency`` connections) for ``--prune-baseline`` windows of
   ``--prune-window`` seconds.
3. **During the prune**: ``manage.py openim_prune --days D`` in its own process (bounded by
   ``--prune-time-limit``), with load windows back to back until it ends, and a sampler counting the
   receiver's database sessions waiting on a lock (``pg_stat_activity.wait_event_type = 'Lock'``)
   every 0.1 s.
4. **After**: the same baseline windows on the pruned table.

Checks: every delivery of every window stored once with the right status and the mirror as the
generator expects (the mirror is emptied before each window; the reference rows stay), the prune
exited 0, no finished event older than the cutoff is left unless referenced, every referenced and
every unfinished (failed, rejected, received) event is still there. The report gives rows deleted
per second (wall time of the command) and the receive rate with and without the prune.
"""

import statistics
import threading
import time

EVENT_TABLE = "openim_sync_callbackevent"
REFERENCE_TABLE = "openim_sync_blockeduser"
CHUNK = 1_000_000
#: ``n % 200`` → what the row is: (upper bucket bound, kind).
KINDS = [(60, "single"), (120, "group"), (190, "processed"), (195, "rejected"), (198, "failed"),
         (200, "received")]  # fmt: skip
UNFINISHED = ("rejected", "failed", "received")
#: The prune's database sessions, by libpq's PGAPPNAME.
PRUNE_APP = "openim_prune"


def add_arguments(p):
    p.add_argument("--prune-events", type=int, default=10_000_000, help="prune stage: events")
    p.add_argument(
        "--prune-days", type=int, default=10, help="prune stage: openim_prune --days (events "
        "span 10x this, so about 90 %% are older)",
    )  # fmt: skip
    p.add_argument("--prune-batch-size", type=int, help="prune stage: openim_prune --batch-size")
    p.add_argument("--prune-references", type=int, help="prune stage: referenced events")
    p.add_argument("--prune-window", type=float, default=15.0, help="prune stage: s per window")
    p.add_argument("--prune-baseline", type=int, default=2, help="prune stage: windows before")
    p.add_argument("--prune-concurrency", type=int, default=16, help="prune stage: connections")
    p.add_argument("--prune-time-limit", type=float, default=3600, help="prune stage: bound (s)")


# -- the events ---------------------------------------------------------------------------------


def templates():
    """Per kind: command, status, reason, traceback, body with @N@ for the row number, query."""
    import json
    from pathlib import Path

    from workload import compact

    samples = Path(__file__).resolve().parent.parent / "openim_sync" / "samples" / "openim"

    def body(command, **changes):
        data = {**json.loads((samples / f"{command}.json").read_text()), **changes}
        return compact(data).decode()

    single = "callbackAfterSendSingleMsgCommand"
    group = "callbackAfterSendGroupMsgCommand"
    user = "callbackAfterUpdateUserInfoExCommand"
    message = {
        "sendID": "u@N@",
        "serverMsgID": "@N@f9c1d6e8b4a0c3e5d7f9a1b3c5d7e9f",
        "clientMsgID": "@N@3b0c1a4d5f6e7a8b9c0d1e2f3a4b5c",
        "operationID": "@N@-a7f3",
        "content": json.dumps({"content": "hello, message @N@"}),
    }
    key_single = "eyJzZW5kSUQiOiJ1MTAwMSIsInJlY3ZJRCI6InUxMDAyIiwiZ3JvdXBJRCI6IiJ9"
    key_group = "eyJzZW5kSUQiOiJ1MTAwMSIsInJlY3ZJRCI6IiIsImdyb3VwSUQiOiIzMzE4NDMyMjEyIn0="
    update = body(user, userID="u@N@", nickName="name @N@")
    traceback = (
        "Traceback (most recent call last):\n"
        + '  File "/srv/app/openim_sync/writer.py", line 200, in apply_units\n' * 8
        + "django.db.utils.OperationalError: simulated\n"
    )
    return {
        "single": (single, "ignored", "Message callbacks are not mirrored.", "",
                   body(single, **message, recvID="u@N@9"), {"key": key_single}),
        "group": (group, "ignored", "Message callbacks are not mirrored.", "",
                  body(group, **message, groupID="g@N@"), {"key": key_group}),
        "processed": (user, "processed", "", "", update, {}),
        "rejected": (user, "rejected", "Malformed JSON: Expecting value (line 1, column 2).", "",
                     "{bad @N@", {}),
        "failed": (user, "failed", "OperationalError: simulated", traceback, update, {}),
        "received": (user, "received", "", "", update, {}),
    }  # fmt: skip


FILL_SQL = f"""
INSERT INTO {EVENT_TABLE} (protocol, command, url_command, status, reason, traceback, body,
    payload, headers, query, operation_id, remote_addr, received_at, processed_at, attempts,
    subject_user_id, subject_group_id, subject_peer_id)
SELECT 'openim', k.command, k.command, k.status, k.reason, k.traceback,
    convert_to(replace(k.body, '@N@', g.n::text), 'UTF8'),
    CASE WHEN k.status = 'rejected' THEN NULL ELSE replace(k.body, '@N@', g.n::text)::jsonb END,
    replace(%(headers)s, '@N@', g.n::text)::jsonb, k.query::jsonb, g.n::text || '-a7f3',
    '10.0.0.7', t.at, CASE WHEN k.status = 'received' THEN NULL ELSE t.at END,
    CASE WHEN k.status = 'received' THEN 0 ELSE 1 END,
    CASE WHEN k.status = 'rejected' THEN '' ELSE 'u' || g.n END,
    CASE WHEN k.kind = 'group' THEN 'g' || g.n ELSE '' END,
    CASE WHEN k.kind = 'single' THEN 'u' || g.n || '9' ELSE '' END
FROM generate_series(%(lo)s, %(hi)s) AS g(n)
CROSS JOIN LATERAL (SELECT %(start)s::timestamptz
    + (%(span)s::float8 * (g.n - 1) / %(total)s) * interval '1 second' AS at) AS t
JOIN (VALUES {{values}}) AS k(kind, low, high, command, status, reason, traceback, body, query)
    ON g.n %% 200 >= k.low AND g.n %% 200 < k.high
"""


def fill(bench, db, args, now):
    """Store the events (ids 1..N in received_at order) and the rows referencing some."""
    import json

    db.reset()
    kinds = templates()
    values, params, low = [], {}, 0
    for index, (high, kind) in enumerate(KINDS):
        command, status, reason, traceback, body, query = kinds[kind]
        names = [f"k{index}_{field}" for field in ("c", "s", "r", "t", "b", "q")]
        values.append(
            f"('{kind}', {low}, {high}, " + ", ".join(f"%({name})s" for name in names) + ")"
        )
        params.update(
            zip(names, (command, status, reason, traceback, body, json.dumps(query)), strict=True)
        )
        low = high
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": "512",
        "Host": "app.example.com",
        "User-Agent": "Go-http-client/1.1",
        "Operationid": "@N@-a7f3",
        "Accept-Encoding": "gzip",
    }
    span = 10 * args.prune_days * 86400
    total = args.prune_events
    statement = FILL_SQL.replace("{values}", ", ".join(values))
    t0 = time.perf_counter()
    for lo in range(1, total + 1, CHUNK):
        hi = min(lo + CHUNK - 1, total)
        db.run(
            statement,
            {**params, "headers": json.dumps(headers), "lo": lo, "hi": hi, "total": total,
             "span": span, "start": now - _seconds(span)},
        )  # fmt: skip
        bench.log(f"prune: stored {hi:,} of {total:,} events ({time.perf_counter() - t0:.0f}s)")
    (first, last) = db.one(f"SELECT min(id), max(id) FROM {EVENT_TABLE}")
    if (first, last) != (1, total):
        raise RuntimeError(f"the event ids are {first}..{last}, not 1..{total}")
    references = args.prune_references or max(1, total // 200)
    step = max(1, total // references)
    # Processed events (n % 200 in 120..189), evenly over the ids: old and fresh ones.
    ids = sorted({min(k * step - (k * step) % 200 + 150, total) for k in range(references)})
    ids = [i for i in ids if 120 <= i % 200 < 190]
    insert_references(db, ids)
    t1 = time.perf_counter()
    db.run(f"VACUUM ANALYZE {EVENT_TABLE}")
    bench.log(f"prune: {len(ids):,} referenced; VACUUM ANALYZE {time.perf_counter() - t1:.0f}s")
    return {"fill_s": time.perf_counter() - t0, "references": len(ids)}


def _seconds(seconds):
    from datetime import timedelta

    return timedelta(seconds=seconds)


def insert_references(db, ids):
    """One block-list row per id, its ``last_event`` that id (columns from the model)."""
    from django.db import models

    from openim_sync.models import BlockedUser

    columns, expressions = [], []
    for field in BlockedUser._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(field.column)
        if field.attname == "last_event_id":
            expressions.append("r.id")
        elif field.attname in ("owner_user_id", "blocked_user_id"):
            expressions.append(f"'bench-{field.attname[:5]}-' || r.id")
        elif field.null:
            expressions.append("NULL")
        elif isinstance(field, models.DateTimeField):
            expressions.append("now()")
        elif isinstance(field, models.JSONField):
            expressions.append("'{}'::jsonb")
        elif isinstance(field, models.BooleanField):
            expressions.append("false")
        elif isinstance(field, models.IntegerField | models.BigIntegerField):
            expressions.append("0")
        else:
            expressions.append("''")
    db.run(
        f"INSERT INTO {REFERENCE_TABLE} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM unnest(%s::bigint[]) AS r(id)",
        [ids],
    )


# -- measuring ----------------------------------------------------------------------------------


class LockSampler(threading.Thread):
    """Every 0.1 s: the bench database's other sessions waiting on a heavyweight lock (the
    receivers' advisory locks on mirror keys included), and those the prune blocks."""

    SQL = (
        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FILTER ("
        "WHERE wait_event_type = 'Lock' AND pg_blocking_pids(pid) && ARRAY(SELECT pid FROM "
        "pg_stat_activity WHERE application_name = %s)) FROM pg_stat_activity "
        "WHERE datname = %s AND application_name IS DISTINCT FROM %s"
    )

    def __init__(self, db):
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(db.url, autocommit=True)
        self.params = [PRUNE_APP, db.name, PRUNE_APP]
        self.stop_event = threading.Event()
        self.samples, self.waiting, self.most, self.blocked, self.most_blocked = 0, 0, 0, 0, 0

    def run(self):
        while not self.stop_event.wait(0.1):
            waiting, blocked = self.conn.execute(self.SQL, self.params).fetchone()
            self.samples += 1
            self.waiting += bool(waiting)
            self.most = max(self.most, waiting)
            self.blocked += bool(blocked)
            self.most_blocked = max(self.most_blocked, blocked)

    def stop(self):
        self.stop_event.set()
        self.join(5)
        self.conn.close()
        return {"samples": self.samples, "with_waiters": self.waiting, "max_waiters": self.most,
                "blocked_by_prune": self.blocked, "max_blocked": self.most_blocked}  # fmt: skip


def window(bench, args, db, logdir, handled, seed, name):
    """One load window on an empty mirror (the reference rows stay); its checks."""
    for table in bench.MIRROR_TABLES:
        if table != REFERENCE_TABLE:
            db.run(f"DELETE FROM {table}")
    (before,) = db.one(f"SELECT coalesce(max(id), 0) FROM {EVENT_TABLE}")
    result = bench.loadgen(
        args, logdir, prefix="/openim/callback", concurrency=args.prune_concurrency,
        duration=args.prune_window, seed=seed, handled=handled, name=name,
    )  # fmt: skip
    result["problems"] = check_window(bench, db, result, handled, before)
    return result


def check_window(bench, db, result, handled, before):
    problems = []
    rows = db.all(
        f"SELECT command, status, count(*) FROM {EVENT_TABLE} WHERE id > %s GROUP BY 1, 2",
        [before],
    )
    stored = {}
    for command, status, count in rows:
        stored[command] = stored.get(command, 0) + count
        want = "processed" if command in handled else "ignored"
        if status != want:
            problems.append(f"{command}: {count} event(s) {status}, expected {want}")
    sent, ok = result["sent_by_command"], result["ok_by_command"]
    for command in sorted(set(stored) | set(sent)):
        have, lo, hi = stored.get(command, 0), ok.get(command, 0), sent.get(command, 0)
        if not lo <= have <= hi:
            problems.append(f"{command}: {have} stored for {hi} sent ({lo} acknowledged)")
    return problems + bench.compare_mirror(db, result["expected"])


def parse_summary(lines):
    """(deleted, seconds, batches) from the command's summary line, or Nones."""
    import re

    for line in reversed(lines):
        found = re.search(r"^Deleted (\d+) event\(s\).* in ([\d.]+)s(?: \(.*?(\d+) batch)?", line)
        if found:
            return int(found.group(1)), float(found.group(2)), int(found.group(3) or 0)
    return None, None, None


def port_is_free(port):
    """Refuse to start when something else listens on the port: the load would go to it."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SystemExit(
                f"prune: port {port} is in use ({exc}); choose one with --port"
            ) from None


def run(bench, args, db, server, logdir, handled, report):
    """The stage (``bench`` is the runner module, for its database, server and load helpers)."""
    from datetime import UTC, datetime

    if args.quick:
        args.prune_events = min(args.prune_events, 100_000)
        args.prune_window, args.prune_baseline = min(args.prune_window, 4.0), 1
    port_is_free(args.port)
    now = datetime.now(UTC)
    bench.log(f"prune: storing {args.prune_events:,} events over {10 * args.prune_days} days")
    result = {"events": args.prune_events, "days": args.prune_days} | fill(bench, db, args, now)
    result["size_before"] = bench.table_size(db)
    counts_before = dict(db.all(f"SELECT status, count(*) FROM {EVENT_TABLE} GROUP BY 1"))
    server.start("inline")
    problems, seed = [], 700
    try:
        bench.loadgen(args, logdir, prefix="/openim/callback", concurrency=8,
                      duration=args.warmup, seed=1)  # fmt: skip
        without = []
        for n in range(args.prune_baseline):
            seed += 1
            without.append(window(bench, args, db, logdir, handled, seed, f"prune-before-{n}"))
        cutoff = datetime.now(UTC) - _seconds(args.prune_days * 86400)
        cmd = [bench.PY, "manage.py", "openim_prune", f"--days={args.prune_days}",
               "--skip-checks", "--verbosity=2"]  # fmt: skip
        if args.prune_batch_size:
            cmd.append(f"--batch-size={args.prune_batch_size}")
        sampler = LockSampler(db)
        sampler.start()
        t0 = time.perf_counter()
        env = server.env("inline") | {"PGAPPNAME": PRUNE_APP}
        proc = bench.start(cmd, env, "openim_prune", logdir)
        during = []
        while proc.poll() is None and time.perf_counter() - t0 < args.prune_time_limit:
            seed += 1
            run_ = window(bench, args, db, logdir, handled, seed, f"prune-during-{len(during)}")
            run_["complete"] = proc.poll() is None  # the prune ran for the whole window
            during.append(run_)
        if proc.poll() is None:
            problems.append(f"openim_prune still running after {args.prune_time_limit:.0f}s")
        bench.stop(proc)
        wall = time.perf_counter() - t0
        locks = sampler.stop()
        after = []
        for n in range(args.prune_baseline):
            seed += 1
            after.append(window(bench, args, db, logdir, handled, seed, f"prune-after-{n}"))
    finally:
        server.stop()
    lines = (logdir / "openim_prune.log").read_text().splitlines()
    deleted, seconds, batches = parse_summary(lines)
    if proc.returncode != 0:
        problems.append(f"openim_prune exited {proc.returncode}: {lines[-1:] or 'no output'}")
    problems += check_prune(db, cutoff, counts_before, result["references"])
    for runs in (without, during, after):
        problems += [p for r in runs for p in r["problems"]]
    full = [r for r in during if r["complete"]] or during
    result |= {
        "prune_wall_s": wall,
        "deleted": deleted,
        "batches": batches,
        "deleted_per_s": (deleted or 0) / wall,
        "command_s": seconds,
        "deleted_per_command_s": (deleted or 0) / seconds if seconds else None,
        "last_lines": lines[-2:],
        "locks": locks,
        "rps_without": statistics.median(r["rps"] for r in without),
        "rps_during": statistics.median(r["rps"] for r in full) if full else None,
        "rps_during_min": min((r["rps"] for r in full), default=None),
        "rps_after": statistics.median(r["rps"] for r in after),
        "p99_without": statistics.median(r["latency_ms"]["p99"] for r in without),
        "p99_during": statistics.median(r["latency_ms"]["p99"] for r in full) if full else None,
        "max_during": max((r["latency_ms"]["max"] for r in full), default=None),
        "windows_during": len(during),
        "errors": bench.merge_counts(r["errors"] for r in without + during + after),
        "size_after": bench.table_size(db),
        "problems": problems,
    }
    report["prune"] = result
    report.setdefault("sections", []).extend(render(result))
    bench.log(render(result)[0])


def check_prune(db, cutoff, counts_before, references):
    problems = []
    margin = _seconds(60)
    (left,) = db.one(
        f"SELECT count(*) FROM {EVENT_TABLE} e WHERE status IN ('processed', 'ignored') "
        f"AND received_at < %s AND NOT EXISTS (SELECT 1 FROM {REFERENCE_TABLE} r "
        "WHERE r.last_event_id = e.id)",
        [cutoff - margin],
    )
    if left:
        problems.append(f"{left} finished event(s) older than the cutoff left")
    (kept,) = db.one(
        f"SELECT count(*) FROM {REFERENCE_TABLE} r JOIN {EVENT_TABLE} e ON e.id = r.last_event_id"
    )
    if kept != references:
        problems.append(f"{references - kept} referenced event(s) deleted")
    for status in UNFINISHED:
        (now,) = db.one(f"SELECT count(*) FROM {EVENT_TABLE} WHERE status = %s", [status])
        if now < counts_before.get(status, 0):
            problems.append(f"{counts_before[status] - now} {status} event(s) deleted")
    return problems


def render(r):
    def rate(value):
        return "-" if value is None else f"{value:,.0f}/s"

    verdict = "PASS" if not r["problems"] else "FAIL " + "; ".join(r["problems"])[:300]
    before, after = r["size_before"], r["size_after"]
    return [
        f"Prune (`openim_prune --days {r['days']}` over {r['events']:,} events, "
        f"{before['total'] / 2**30:.2f} GiB): deleted {r['deleted'] or 0:,} in "
        f"{r['prune_wall_s']:.1f}s = **{r['deleted_per_s']:,.0f} rows/s** "
        f"({r['batches'] or 0:,} batches; {rate(r['deleted_per_command_s'])} in the command's "
        f"own {r['command_s'] or 0:.1f}s, without start-up); receive rate without "
        f"{rate(r['rps_without'])}, "
        f"**during {rate(r['rps_during'])}** (lowest window {rate(r['rps_during_min'])}, "
        f"{r['windows_during']} window(s)), after {rate(r['rps_after'])}; p99 without "
        f"{r['p99_without']:.1f} ms, during {r['p99_during'] or 0:.1f} ms, max during "
        f"{r['max_during'] or 0:.1f} ms; receiver sessions blocked by the prune in "
        f"{r['locks']['blocked_by_prune']} of {r['locks']['samples']} samples (at most "
        f"{r['locks']['max_blocked']}; waiting on any lock, their own advisory locks included: "
        f"{r['locks']['with_waiters']}, at most {r['locks']['max_waiters']}); "
        f"errors {r['errors'] or 'none'}; table "
        f"{before['rows']:,} -> {after['rows']:,} rows; {verdict}",
        "",
    ]
