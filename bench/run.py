"""Benchmark runner: ``make bench`` (or ``.venv/bin/python bench/run.py [--quick]``).

Creates a dedicated PostgreSQL database, serves the example project (plus a bare "floor" view)
under gunicorn with persistent connections, drives it with ``bench/loadgen.py`` from a separate
process, and checks after every run that each delivery was stored once and the mirror equals the
generator's expected state. See bench/README.md for what is measured and how to read the report.
"""

import argparse
import contextlib
import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
BIN = Path(PY).parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(ROOT))

import prune_stage  # noqa: E402
from workload import MODELLED, World, expected_mirror, parse_mix  # noqa: E402

HOST = "127.0.0.1"
EVENT_TABLE = "openim_sync_callbackevent"
MIRROR_TABLES = [
    "openim_sync_imuser",
    "openim_sync_imgroup",
    "openim_sync_groupmember",
    "openim_sync_friend",
    "openim_sync_blockeduser",
    "openim_sync_onlinesession",
]
TASK_TABLE = "django_tasks_database_dbtaskresult"
#: The floor view's table (bench/benchsite/floor.py), created here so it needs no migration.
FLOOR_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_floor (
    id bigserial PRIMARY KEY,
    command varchar(128) NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
CLK = os.sysconf("SC_CLK_TCK")
PROCS = []  # every process we started, stopped in cleanup()


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- processes and CPU ---------------------------------------------------------------------


def cpu_of(pid):
    """CPU seconds (user + system) of one process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK


def children_of(pid):
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry.name))
    return kids


class CpuMeter:
    """CPU seconds used by a changing set of processes between start() and stop()."""

    def __init__(self, pids_fn):
        self.pids_fn = pids_fn

    def start(self):
        self.before = {pid: cpu_of(pid) or 0.0 for pid in self.pids_fn()}
        self.t0 = time.perf_counter()

    def stop(self):
        total = 0.0
        for pid in set(self.pids_fn()) | set(self.before):
            now = cpu_of(pid)
            if now is not None:
                total += now - self.before.get(pid, 0.0)
        return total, time.perf_counter() - self.t0


def start(cmd, env, name, logdir):
    out = open(logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    proc.name = name
    PROCS.append(proc)
    return proc


def stop(proc, timeout=15):
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc in PROCS:
        PROCS.remove(proc)


def cleanup():
    for proc in list(PROCS):
        stop(proc)


# -- database ------------------------------------------------------------------------------


class Database:
    def __init__(self, url, name):
        import psycopg

        self.psycopg = psycopg
        self.base = url.rstrip("/")
        self.name = name
        self.url = f"{self.base}/{name}"
        self.conn = None

    def recreate(self):
        with self.psycopg.connect(f"{self.base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.name}"')

    def connect(self):
        self.conn = self.psycopg.connect(self.url, autocommit=True)

    def all(self, sql, params=None):
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql, params=None):
        return self.conn.execute(sql, params).fetchone()

    def run(self, sql, params=None):
        self.conn.execute(sql, params)

    def reset(self, events=True):
        tables = MIRROR_TABLES + [TASK_TABLE, "bench_floor"] + ([EVENT_TABLE] if events else [])
        self.run(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")

    def backend_pids(self):
        rows = self.all(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s OR backend_type <> 'client backend'",
            [self.name],
        )
        me = self.conn.info.backend_pid
        return [pid for (pid,) in rows if pid != me]


# -- the server ----------------------------------------------------------------------------


class Server:
    def __init__(self, args, db, logdir):
        self.args, self.db, self.logdir = args, db, logdir
        self.proc = self.worker = None

    def env(self, processing):
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="benchsite.settings",
            PYTHONPATH=os.pathsep.join([str(BENCH), str(ROOT)]),
            DATABASE_URL=self.db.url,
            DATABASE_CONN_MAX_AGE=str(self.args.conn_max_age),
            DJANGO_DEBUG="0",
            OPENIM_SYNC_PROCESSING=processing,
        )
        return env

    def start(self, processing):
        a = self.args
        cmd = [
            str(BIN / "gunicorn"),
            "benchsite.wsgi:application",
            f"--bind={HOST}:{a.port}",
            f"--workers={a.workers}",
            f"--worker-class={a.worker_class}",
            f"--threads={a.threads}",
            "--backlog=2048",
            "--keep-alive=30",
            "--graceful-timeout=5",
            "--log-level=warning",
        ]
        self.proc = start(cmd, self.env(processing), f"gunicorn-{processing}", self.logdir)
        self.wait_ready()
        if processing == "deferred":
            nice = ["nice", "-n", str(self.args.worker_nice)] if self.args.worker_nice else []
            self.worker = start(
                [
                    *nice,
                    PY,
                    "manage.py",
                    "openim_worker",
                    "--poll=0.05",
                    "--skip-checks",
                ],
                self.env(processing) | {"DJANGO_SETTINGS_MODULE": "benchsite.settings"},
                "openim_worker",
                self.logdir,
            )

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}); see {self.logdir}")
            try:
                conn = http.client.HTTPConnection(HOST, self.args.port, timeout=2)
                conn.request("GET", "/admin/login/")
                if conn.getresponse().status in (200, 302):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not become ready")

    def pids(self):
        return [self.proc.pid, *children_of(self.proc.pid)] if self.proc else []

    def stop(self):
        for proc in (self.worker, self.proc):
            if proc is not None:
                stop(proc)
        self.proc = self.worker = None


# -- one measured run ----------------------------------------------------------------------


def loadgen(args, logdir, *, prefix, concurrency, duration, seed, handled=None, name="load"):
    out = logdir / f"{name}.json"
    cmd = [
        PY,
        str(BENCH / "loadgen.py"),
        f"--port={args.port}",
        f"--prefix={prefix}",
        f"--concurrency={concurrency}",
        f"--duration={duration}",
        f"--max-requests={args.max_requests}",
        f"--users={args.users}",
        f"--groups={args.groups}",
        f"--mix={args.mix}",
        f"--seed={seed}",
        "--check-body",
    ]
    if handled is not None:
        cmd.append("--handled=" + ",".join(sorted(handled)))
    cmd.append(f"--out={out}")
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=duration + 120, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def measured(args, db, server, logdir, **kwargs):
    server_cpu, db_cpu = CpuMeter(server.pids), CpuMeter(db.backend_pids)
    worker_cpu = CpuMeter(lambda: [server.worker.pid] if server.worker else [])
    for meter in (server_cpu, db_cpu, worker_cpu):
        meter.start()
    result = loadgen(args, logdir, **kwargs)
    result["server_cpu_s"], _ = server_cpu.stop()
    result["db_cpu_s"], _ = db_cpu.stop()
    result["worker_cpu_s"], _ = worker_cpu.stop()
    return result


def wait_drained(db, timeout):
    """Deferred mode: wait until no event is left in ``received``; (seconds, backlog left)."""
    t0 = time.perf_counter()
    backlog = None
    while time.perf_counter() - t0 < timeout:
        (backlog,) = db.one(f"SELECT count(*) FROM {EVENT_TABLE} WHERE status = 'received'")
        if backlog == 0:
            break
        time.sleep(0.25)
    return time.perf_counter() - t0, backlog


# -- verification --------------------------------------------------------------------------


def verify(db, result, handled, *, exclude_command=None, only_done=False):
    """Every delivery stored once, the right status, and the mirror as expected. → problems."""
    problems = []
    where = "WHERE command <> %s" if exclude_command else ""
    params = [exclude_command] if exclude_command else None
    if only_done:  # a bounded replay: the events it reached
        where = "WHERE status <> 'received'"
    rows = db.all(
        f"SELECT command, status, count(*) FROM {EVENT_TABLE} {where} GROUP BY 1, 2", params
    )
    stored, statuses = {}, {}
    for command, status, count in rows:
        stored[command] = stored.get(command, 0) + count
        statuses[(command, status)] = count
    sent, ok = result["sent_by_command"], result["ok_by_command"]
    for command in sorted(set(stored) | set(sent)):
        have, lo, hi = stored.get(command, 0), ok.get(command, 0), sent.get(command, 0)
        if not lo <= have <= hi:
            problems.append(f"{command}: {have} stored for {hi} sent ({lo} acknowledged)")
    for (command, status), count in sorted(statuses.items()):
        want = "processed" if command in handled else "ignored"
        if status != want:
            problems.append(f"{command}: {count} event(s) {status}, expected {want}")
    problems += compare_mirror(db, result["expected"])
    return problems


def compare_mirror(db, expected):
    problems = []
    tables = {
        "users": (
            "SELECT user_id, nickname, face_url FROM openim_sync_imuser",
            ("nickname", "face_url"),
        ),
        "sessions": (
            "SELECT user_id || '|' || platform, online FROM openim_sync_onlinesession "
            "WHERE conn_id = ''",
            None,
        ),
        "members": (
            "SELECT group_id || '|' || user_id, removed_at IS NULL, nickname, role_level "
            "FROM openim_sync_groupmember",
            ("present", "nickname", "role_level"),
        ),
        "friends": (
            "SELECT owner_user_id || '|' || friend_user_id, removed_at IS NULL, remark "
            "FROM openim_sync_friend",
            ("present", "remark"),
        ),
        "groups": ("SELECT group_id, name FROM openim_sync_imgroup", ("name",)),
    }
    for section, (sql, names) in tables.items():
        want = expected.get(section, {})
        have = {}
        for row in db.all(sql):
            have[row[0]] = row[1] if names is None else dict(zip(names, row[1:], strict=True))
        bad = []
        for key, value in want.items():
            if key not in have:
                bad.append(f"{key} missing")
            elif names is None:
                if have[key] != value:
                    bad.append(f"{key}: {have[key]!r} != {value!r}")
            else:
                for field, wanted in value.items():
                    if have[key].get(field) != wanted:
                        bad.append(f"{key}.{field}: {have[key].get(field)!r} != {wanted!r}")
        if section != "groups":  # groups also appear implicitly, as the parent of a member
            bad += [f"{key} unexpected" for key in have if key not in want]
        if bad:
            problems.append(f"mirror {section}: {len(bad)} mismatch(es), e.g. {bad[:3]}")
    return problems


# -- stages --------------------------------------------------------------------------------


def handled_commands():
    """Which OpenIM commands the receiver applies (not ignored), from its own registry."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
    import django

    django.setup()
    from openim_sync.callbacks import registry

    registry.load_builtin_handlers()
    return {
        spec.name
        for spec in registry.commands("openim")
        if not spec.ignored and spec.name in MODELLED | set(parse_mix("default"))
    }


def load_stage(args, db, server, logdir, handled, report):
    seed = 100
    for processing in args.modes:
        log(
            f"gunicorn: {args.workers} x {args.worker_class} ({args.threads} threads), {processing}"
        )
        server.start(processing)
        try:
            # Warm-up: imports, connections, caches in every worker.
            for prefix in ("/bench/floor", "/openim/callback"):
                loadgen(args, logdir, prefix=prefix, concurrency=8, duration=args.warmup, seed=1)
            if processing == "deferred":
                wait_drained(db, 60)
            db.reset()
            for concurrency in args.concurrency:
                floors, ours = [], []
                for round_ in range(args.rounds):
                    seed += 1
                    db.reset()
                    floor = measured(
                        args, db, server, logdir, prefix="/bench/floor",
                        concurrency=concurrency, duration=args.duration, seed=seed,
                        name=f"floor-{processing}-{concurrency}-{round_}",
                    )  # fmt: skip
                    (stored,) = db.one("SELECT count(*) FROM bench_floor")
                    floor["problems"] = (
                        [] if stored == floor["requests"] else [f"floor stored {stored}"]
                    )
                    floors.append(floor)
                    db.reset()
                    run = measured(
                        args, db, server, logdir, prefix="/openim/callback",
                        concurrency=concurrency, duration=args.duration, seed=seed,
                        handled=handled, name=f"ours-{processing}-{concurrency}-{round_}",
                    )  # fmt: skip
                    if processing == "deferred":
                        (backlog,) = db.one(
                            f"SELECT count(*) FROM {EVENT_TABLE} WHERE status = 'received'"
                        )
                        worker = CpuMeter(lambda: [server.worker.pid])
                        worker.start()
                        drain_s, left = wait_drained(db, args.drain_timeout)
                        drain_cpu = worker.stop()[0]
                        run["deferred"] = {
                            "backlog_at_end": backlog,
                            "drain_s": drain_s,
                            "left": left,
                            "worker_rate": run["requests"] / (run["wall_s"] + drain_s),
                            "worker_cpu_drain_s": drain_cpu,
                        }
                    run["problems"] = verify(db, run, handled)
                    ours.append(run)
                    log(line(processing, concurrency, floor, run))
                report["load"].append(summary(processing, concurrency, floors, ours))
        finally:
            server.stop()


def profile_stage(args, db, server, logdir, handled, report):
    """py-spy on every gunicorn process during one inline run: where the time goes."""
    pyspy = BIN / "py-spy"
    if not pyspy.exists():
        log("profile: py-spy is not installed (.venv/bin/pip install py-spy); skipped")
        return
    server.start("inline")
    try:
        loadgen(
            args, logdir, prefix="/openim/callback", concurrency=8, duration=args.warmup, seed=1
        )
        db.reset()
        out = logdir / "profile.txt"
        spy = subprocess.Popen(
            [str(pyspy), "record", "--format=raw", f"--output={out}", "--rate=200",
             f"--duration={int(args.duration)}", "--subprocesses", f"--pid={server.proc.pid}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        PROCS.append(spy)
        time.sleep(1)
        run = loadgen(
            args, logdir, prefix="/openim/callback", concurrency=args.concurrency[0],
            duration=args.duration, seed=900, handled=handled, name="profile-load",
        )  # fmt: skip
        spy.wait(args.duration + 30)
        PROCS.remove(spy)
        summary = subprocess.run(
            [PY, str(BENCH / "profile_summary.py"), str(out)], capture_output=True, text=True
        ).stdout
        (logdir / "profile-summary.txt").write_text(summary)
        report["profile"] = {"rps": run["rps"], "summary": summary}
        log(f"profile: {run['rps']:.0f}/s under py-spy; summary in {logdir}/profile-summary.txt")
    finally:
        server.stop()


def line(processing, concurrency, floor, run):
    extra = ""
    if "deferred" in run:
        d = run["deferred"]
        extra = f", backlog {d['backlog_at_end']} drained in {d['drain_s']:.1f}s (left {d['left']})"
    verdict = "PASS" if not run["problems"] and not floor["problems"] else "FAIL"
    return (
        f"{processing:8} c={concurrency:<3} floor {floor['rps']:7.0f}/s  ours {run['rps']:7.0f}/s "
        f"= {run['rps'] / floor['rps']:.2f} of floor, p99 {run['latency_ms']['p99']:.1f} ms"
        f"{extra}  {verdict} {'; '.join(run['problems'] + floor['problems'])[:300]}"
    )


def summary(processing, concurrency, floors, ours):
    def pick(runs):
        return {
            "rps": median(r["rps"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "latency_ms": {
                k: median(r["latency_ms"][k] for r in runs) for k in ("p50", "p90", "p99", "max")
            },
            "errors": merge_counts(r["errors"] for r in runs),
            "cpu": {
                name: sum(r[f"{name}_cpu_s"] for r in runs) / sum(r["wall_s"] for r in runs)
                for name in ("client", "server", "db", "worker")
            },
            "problems": [p for r in runs for p in r["problems"]],
        }

    result = {
        "processing": processing,
        "concurrency": concurrency,
        "floor": pick(floors),
        "ours": pick(ours),
        "ratio": median(o["rps"] / f["rps"] for o, f in zip(ours, floors, strict=True)),
        # Less sensitive to other load on the machine: CPU (server + database + worker) spent
        # per delivery, floor / ours. Equals the throughput ratio when both are CPU-bound.
        "cpu_ratio": cpu_per_request(floors) / cpu_per_request(ours),
    }
    for name, runs in (("floor", floors), ("ours", ours)):
        result[name]["cpu_ms_per_request"] = 1000 * cpu_per_request(runs)
    if processing == "deferred":
        result["deferred"] = [r["deferred"] for r in ours]
    return result


def cpu_per_request(runs):
    cpu = sum(r["server_cpu_s"] + r["db_cpu_s"] + r["worker_cpu_s"] for r in runs)
    return cpu / max(1, sum(r["requests"] for r in runs))


def merge_counts(dicts):
    total = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def copy_events(db, events, start_at, *, status="received"):
    """Store generated events the way the view would, with COPY (fast)."""
    from psycopg.types.json import Jsonb

    from openim_sync.subjects import subjects

    cols = (
        "protocol, command, url_command, status, reason, traceback, body, payload, headers, "
        "query, operation_id, remote_addr, received_at, attempts, subject_user_id, "
        "subject_group_id, subject_peer_id"
    )
    with db.conn.cursor() as cur, cur.copy(f"COPY {EVENT_TABLE} ({cols}) FROM STDIN") as copy:
        for n, event in enumerate(events):
            _path, _, query = event.path.partition("?")
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Content-Length": str(len(event.body)),
                "Host": f"{HOST}:8000",
                "User-Agent": "Go-http-client/1.1",
                "Operationid": event.operation_id,
                "Accept-Encoding": "gzip",
            }
            payload = json.loads(event.body)
            copy.write_row(
                (
                    "openim", event.command, event.command, status, "", "", event.body,
                    Jsonb(payload), Jsonb(headers),
                    Jsonb({"key": query[4:]} if query else {}), event.operation_id,
                    "127.0.0.1", start_at + timedelta(milliseconds=n), 0, *subjects(payload),
                )
            )  # fmt: skip


def stored_world(args):
    world = World(args.users, args.groups, parse_mix(args.mix), seed=7)
    return [world.next_event() for _ in range(args.replay_events)]


def timed(cmd, env, logdir, name, limit, cpu_pids):
    """Run a management command bounded by ``limit`` seconds (SIGTERM after it); measure it."""
    out = open(logdir / f"{name}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    PROCS.append(proc)
    cpu = CpuMeter(cpu_pids)
    cpu.start()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        proc.wait(limit)
        complete = True
    except subprocess.TimeoutExpired:
        complete = False  # bounded: stop it and measure the prefix it did
        stop(proc)
    wall = time.perf_counter() - t0
    cpu_s, _ = cpu.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s += (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if proc in PROCS:
        PROCS.remove(proc)
    out.seek(0)
    lines = out.read().splitlines()
    return {"wall_s": wall, "cpu_s": cpu_s, "complete": complete, "returncode": proc.returncode,
            "output": lines[-3:]}  # fmt: skip


def worker_stage(args, db, server, logdir, handled, report):
    """The deferred backlog: N events stored 'received', drained by one openim_worker."""
    log(f"worker: storing {args.replay_events:,} generated events as 'received'")
    db.reset()
    events = stored_world(args)
    copy_events(db, events, datetime.now(UTC) - timedelta(days=1))
    db.run(f"VACUUM ANALYZE {EVENT_TABLE}")
    size = table_size(db)
    log(f"worker: {size['total'] / 2**20:.1f} MiB on disk; running openim_worker --once")
    result = timed(
        [PY, "manage.py", "openim_worker", "--once", "--skip-checks"],
        server.env("deferred"), logdir, "worker", args.replay_time_limit, db.backend_pids,
    )  # fmt: skip
    done, last = db.one(
        f"SELECT count(*), coalesce(max(id), 0) FROM {EVENT_TABLE} WHERE status <> 'received'"
    )
    result |= {"events": len(events), "applied": done, "events_per_s": done / result["wall_s"],
               "cpu_ms_per_event": 1000 * result["cpu_s"] / max(done, 1), "size": size}  # fmt: skip
    result["problems"] = check_prefix(db, events[:done], handled, last)
    report["worker"] = result
    log(stage_line("worker", result, "applied"))


def rebuild_stage(args, db, server, logdir, handled, report):
    """``openim_replay --rebuild`` over the stored events (PostgreSQL): empty mirror, replay all."""
    (count,) = db.one(f"SELECT count(*) FROM {EVENT_TABLE}")
    events = stored_world(args)
    if count != len(events):
        db.reset()
        copy_events(db, events, datetime.now(UTC) - timedelta(days=1), status="processed")
        db.run(f"VACUUM ANALYZE {EVENT_TABLE}")
    log(f"rebuild: openim_replay --rebuild over {len(events):,} stored events (PostgreSQL)")
    result = timed(
        [PY, "manage.py", "openim_replay", "--rebuild", "--no-input", "--skip-checks"],
        server.env("inline"), logdir, "rebuild", args.replay_time_limit, db.backend_pids,
    )  # fmt: skip
    result |= rebuild_result(result, events)
    result["problems"] = rebuild_problems(db, result, events, handled)
    result["size_after"] = table_size(db)
    report["rebuild"] = result
    log(stage_line("rebuild", result, "applied"))


def rebuild_result(result, events):
    done = len(events) if result["complete"] else 0
    return {"events": len(events), "applied": done, "events_per_s": len(events) / result["wall_s"],
            "cpu_ms_per_event": 1000 * result["cpu_s"] / len(events)}  # fmt: skip


def rebuild_problems(db, result, events, handled):
    if not result["complete"]:
        return [f"stopped after {result['wall_s']:.0f}s; see the log"]
    sent = {}
    for e in events:
        sent[e.command] = sent.get(e.command, 0) + 1
    expected = expected_mirror([(e.command, e.op) for e in events], handled)
    problems = verify(db, {"sent_by_command": sent, "ok_by_command": sent, "expected": expected},
                      handled, only_done=True)  # fmt: skip
    if result["returncode"]:
        problems.append(f"exited {result['returncode']}")
    return problems


class SqliteDb:
    """``Database``'s read methods over a SQLite file (for the checks)."""

    def __init__(self, path):
        import sqlite3

        self.conn = sqlite3.connect(path)

    def all(self, sql, params=None):
        return self.conn.execute(sql.replace("%s", "?"), params or ()).fetchall()

    def one(self, sql, params=None):
        return self.all(sql, params)[0]


def sqlite_rebuild_stage(args, db, server, logdir, handled, report):
    """``openim_replay --rebuild`` of the same events on SQLite (the embedded default)."""
    import tempfile

    from openim_sync.subjects import subjects

    events = stored_world(args)
    path = Path(tempfile.mkdtemp(prefix="openim-bench-")) / "bench.sqlite3"
    env = {k: v for k, v in server.env("inline").items() if k != "DATABASE_URL"}
    env["SQLITE_PATH"] = str(path)
    subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    lite = SqliteDb(path)
    start_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
    rows = []
    for n, e in enumerate(events):
        _path, _, query = e.path.partition("?")
        payload = json.loads(e.body)
        rows.append((
            "openim", e.command, e.command, "processed", "", "", e.body, json.dumps(payload),
            json.dumps({"Operationid": e.operation_id}), json.dumps({"key": query[4:]} if query else {}),
            e.operation_id, "127.0.0.1", str(start_at + timedelta(milliseconds=n)), 1, *subjects(payload),
        ))  # fmt: skip
    lite.conn.executemany(
        f"INSERT INTO {EVENT_TABLE} (protocol, command, url_command, status, reason, traceback, "
        "body, payload, headers, query, operation_id, remote_addr, received_at, attempts, "
        "subject_user_id, subject_group_id, subject_peer_id) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    lite.conn.commit()
    log(f"rebuild: openim_replay --rebuild over {len(events):,} stored events (SQLite)")
    result = timed(
        [PY, "manage.py", "openim_replay", "--rebuild", "--no-input", "--skip-checks"],
        env, logdir, "rebuild-sqlite", args.replay_time_limit, list,
    )  # fmt: skip
    result |= rebuild_result(result, events)
    result["problems"] = rebuild_problems(lite, result, events, handled)
    report["rebuild_sqlite"] = result
    log(stage_line("rebuild (SQLite)", result, "applied"))
    path.unlink()


def check_prefix(db, done_events, handled, last):
    sent = {}
    for e in done_events:
        sent[e.command] = sent.get(e.command, 0) + 1
    expected = expected_mirror([(e.command, e.op) for e in done_events], handled)
    problems = verify(db, {"sent_by_command": sent, "ok_by_command": sent, "expected": expected},
                      handled, only_done=True)  # fmt: skip
    if last != len(done_events):
        problems.append(f"applied events are not the prefix 1..{len(done_events)} (max id {last})")
    return problems


def stage_line(name, r, key):
    verdict = "PASS" if not r["problems"] else "FAIL " + "; ".join(r["problems"])[:300]
    return (
        f"{name}: {r[key]:,} of {r['events']:,} events in {r['wall_s']:.1f}s = "
        f"{r['events_per_s']:.0f} events/s, {r['cpu_ms_per_event']:.2f} CPU-ms/event "
        f"(command and database) {verdict}"
    )


def table_size(db):
    total, heap, toast_and_idx = db.one(
        "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s)",
        [EVENT_TABLE] * 3,
    )
    (rows,) = db.one(f"SELECT count(*) FROM {EVENT_TABLE}")
    return {"total": total, "heap": heap, "indexes": toast_and_idx, "rows": rows}


FILLER_SQL = f"""
INSERT INTO {EVENT_TABLE} (protocol, command, url_command, status, reason, traceback, body,
    payload, headers, query, operation_id, remote_addr, received_at, processed_at, attempts,
    subject_user_id, subject_group_id, subject_peer_id)
SELECT 'openim', 'benchFiller', 'benchFiller', 'processed', '', '', %(body)s,
    %(payload)s::jsonb, %(headers)s::jsonb, '{{}}'::jsonb, md5(n::text),
    '127.0.0.1', now() - interval '1 second' * n, now() - interval '1 second' * n, 1,
    'filler' || (n %% 5000), '', ''
FROM generate_series(1, %(count)s) AS n
"""


def scale_stage(args, db, server, logdir, handled, report):
    sample = World(10, 2, seed=3)._callbackAfterUpdateUserInfoExCommand()
    headers = json.dumps({"Content-Type": "application/json; charset=utf-8", "Operationid": "x"})
    server.start("inline")
    try:
        db.reset()
        loadgen(
            args, logdir, prefix="/openim/callback", concurrency=8, duration=args.warmup, seed=1
        )
        db.reset()
        seed = 500
        for size in args.scale_sizes:
            (have,) = db.one(f"SELECT count(*) FROM {EVENT_TABLE}")
            if size > have:
                t0 = time.perf_counter()
                db.run(
                    FILLER_SQL,
                    {
                        "body": sample.body,
                        "payload": sample.body.decode(),
                        "headers": headers,
                        "count": size - have,
                    },
                )
                db.run(f"VACUUM ANALYZE {EVENT_TABLE}")
                log(f"scale: filled to {size:,} events in {time.perf_counter() - t0:.1f}s")
            db.run(f"TRUNCATE {', '.join([*MIRROR_TABLES, TASK_TABLE])} RESTART IDENTITY")
            db.run(f"DELETE FROM {EVENT_TABLE} WHERE command <> 'benchFiller'")
            seed += 1
            run = measured(
                args, db, server, logdir, prefix="/openim/callback", concurrency=16,
                duration=args.scale_duration, seed=seed, handled=handled, name=f"scale-{size}",
            )  # fmt: skip
            run["problems"] = verify(db, run, handled, exclude_command="benchFiller")
            n = run["requests"]
            entry = {
                "rows": size,
                "rps": run["rps"],
                "latency_ms": run["latency_ms"],
                "server_cpu_ms_per_delivery": 1000 * run["server_cpu_s"] / n,
                "db_cpu_ms_per_delivery": 1000 * run["db_cpu_s"] / n,
                "problems": run["problems"],
            }
            report["scale"].append(entry)
            log(
                f"scale: {size:>9,} rows: {run['rps']:.0f}/s, p50 {run['latency_ms']['p50']:.1f} ms, "
                f"p99 {run['latency_ms']['p99']:.1f} ms, server {entry['server_cpu_ms_per_delivery']:.2f}"
                f" + db {entry['db_cpu_ms_per_delivery']:.2f} CPU-ms/delivery "
                f"{'PASS' if not run['problems'] else 'FAIL ' + str(run['problems'])[:200]}"
            )
        report["explain"] = explain_hot_queries(db)
    finally:
        server.stop()


def explain_hot_queries(db):
    """EXPLAIN the statements a delivery runs, against the grown event table."""
    (event_id,) = db.one(f"SELECT max(id) FROM {EVENT_TABLE}")
    row = db.one("SELECT user_id FROM openim_sync_imuser LIMIT 1") or ("u000001",)
    member = db.one("SELECT group_id, user_id FROM openim_sync_groupmember LIMIT 1") or ("g", "u")
    queries = {
        "store the event (INSERT)": (
            f"INSERT INTO {EVENT_TABLE} (protocol, command, url_command, status, reason, "
            "traceback, body, payload, headers, query, operation_id, remote_addr, received_at, "
            "attempts, subject_user_id, subject_group_id, subject_peer_id) VALUES ('openim', "
            "'x', 'x', 'received', '', '', '\\x00', '{}', '{}', '{}', 'op', '127.0.0.1', now(), "
            "0, 'u1', '', '')",
            [],
        ),
        "record the outcome (UPDATE by id)": (
            f"UPDATE {EVENT_TABLE} SET status = 'processed', processed_at = now(), "
            "attempts = 1 WHERE id = %s",
            [event_id],
        ),
        "lock a user (SELECT FOR UPDATE)": (
            "SELECT * FROM openim_sync_imuser WHERE user_id = %s LIMIT 1 FOR UPDATE",
            [row[0]],
        ),
        "lock a member (SELECT FOR UPDATE)": (
            "SELECT * FROM openim_sync_groupmember WHERE group_id = %s AND user_id = %s "
            "LIMIT 1 FOR UPDATE",
            list(member),
        ),
        "replay batch (id > n ORDER BY id LIMIT 500)": (
            f"SELECT id FROM {EVENT_TABLE} WHERE id > %s ORDER BY id LIMIT 500",
            [event_id // 2],
        ),
        "replay default (failed/rejected)": (
            f"SELECT id FROM {EVENT_TABLE} WHERE status IN ('failed', 'rejected') AND id > 0 "
            "ORDER BY id LIMIT 500",
            [],
        ),
        "deferred backlog (status = received)": (
            f"SELECT count(*) FROM {EVENT_TABLE} WHERE status = 'received'",
            [],
        ),
    }
    plans = {}
    for name, (sql, params) in queries.items():
        with db.conn.transaction():
            plan = db.all("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON, SUMMARY ON) " + sql, params)
            plans[name] = [r[0] for r in plan]
            raise_rollback(db)
    return plans


def raise_rollback(db):
    from psycopg import Rollback

    raise Rollback()


# -- report --------------------------------------------------------------------------------


def render(report):
    out = [f"# openim-sync benchmark, {report['started']}", "", f"Command: `{report['command']}`"]
    out += [f"Machine: {report['machine']}", f"Server: {report['server']}", ""]
    if report["load"]:
        out += [
            "| processing | conc. | floor req/s | ours req/s | ratio | CPU-ms/req floor, ours "
            "(ratio) | p50 | p90 | p99 | max (ms) | errors | CPU client/server/db/worker "
            "(cores) | check |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- "
            "| --- |",
        ]
        for s in report["load"]:
            o, f = s["ours"], s["floor"]
            lat = o["latency_ms"]
            cpu = "/".join(f"{o['cpu'][k]:.2f}" for k in ("client", "server", "db", "worker"))
            ok = "PASS" if not (o["problems"] or f["problems"]) else "FAIL"
            out.append(
                f"| {s['processing']} | {s['concurrency']} | {f['rps']:.0f} | {o['rps']:.0f} | "
                f"{s['ratio']:.2f} | {f['cpu_ms_per_request']:.2f}, {o['cpu_ms_per_request']:.2f} "
                f"({s['cpu_ratio']:.2f}) | {lat['p50']:.1f} | {lat['p90']:.1f} | {lat['p99']:.1f} | "
                f"{lat['max']:.1f} | {o['errors'] or 'none'} | {cpu} | {ok} |"
            )
        out.append("")
        out.append("Floor latency (ms, p50/p99) and CPU (client/server/db):")
        for s in report["load"]:
            f = s["floor"]
            out.append(
                f"- {s['processing']} c={s['concurrency']}: {f['latency_ms']['p50']:.1f} / "
                f"{f['latency_ms']['p99']:.1f}; "
                + "/".join(f"{f['cpu'][k]:.2f}" for k in ("client", "server", "db"))
                + f"; errors {f['errors'] or 'none'}"
            )
        for s in report["load"]:
            for d in s.get("deferred", []):
                out.append(
                    f"- deferred c={s['concurrency']}: backlog {d['backlog_at_end']} at the end of "
                    f"the run, drained in {d['drain_s']:.1f}s, left {d['left']}, overall worker "
                    f"rate {d['worker_rate']:.0f} events/s"
                )
        out.append("")
    for key, title in (
        (
            "worker",
            "Worker (`openim_worker --once`, one process, draining {n:,} 'received' events)",
        ),
        ("rebuild", "Rebuild (`openim_replay --rebuild` of {n:,} events, PostgreSQL)"),
        ("rebuild_sqlite", "Rebuild (`openim_replay --rebuild` of {n:,} events, SQLite)"),
    ):
        r = report.get(key)
        if not r:
            continue
        out.append(
            f"{title.format(n=r['events'])}: {r['applied']:,} in {r['wall_s']:.1f}s = "
            f"**{r['events_per_s']:.0f} events/s**, {r['cpu_ms_per_event']:.2f} CPU-ms/event; "
            f"{'PASS' if not r['problems'] else 'FAIL ' + '; '.join(r['problems'])}"
        )
        if "size" in r:
            b = r["size"]
            out.append(
                f"Size on disk of {b['rows']:,} events: {b['total'] / 2**20:.1f} MiB total "
                f"({b['heap'] / 2**20:.1f} heap, {b['indexes'] / 2**20:.1f} indexes, rest "
                f"TOAST) = {b['total'] / b['rows']:.0f} bytes/event"
            )
        out.append("")
    if report["scale"]:
        out += [
            "| events in table | req/s | p50 | p99 (ms) | server CPU-ms/delivery "
            "| db CPU-ms/delivery | check |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for s in report["scale"]:
            out.append(
                f"| {s['rows']:,} | {s['rps']:.0f} | {s['latency_ms']['p50']:.1f} | "
                f"{s['latency_ms']['p99']:.1f} | {s['server_cpu_ms_per_delivery']:.2f} | "
                f"{s['db_cpu_ms_per_delivery']:.2f} | {'PASS' if not s['problems'] else 'FAIL'} |"
            )
        out.append("")
    for name, plan in report.get("explain", {}).items():
        out += [f"EXPLAIN {name}:", "```", *plan, "```"]
    out += report.get("sections", [])  # stages in their own modules (prune_stage.py)
    out += ["", f"Overall: **{report['verdict']}**"]
    return "\n".join(out) + "\n"


def machine():
    mem = Path("/proc/meminfo").read_text().split()[1]
    return (
        f"{os.cpu_count()} cores, {int(mem) / 2**20:.0f} GiB, load average "
        f"{os.getloadavg()[0]:.2f} at start"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description="openim-sync benchmark (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="a smoke run of under 2 minutes")
    p.add_argument("--stages", default="load,worker,rebuild,rebuild-sqlite,scale")
    p.add_argument("--modes", default="inline,deferred")
    p.add_argument("--concurrency", default="16,64")
    p.add_argument("--duration", type=float, default=15.0, help="seconds per measured run")
    p.add_argument("--rounds", type=int, default=2, help="floor/ours pairs per setting")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--groups", type=int, default=500)
    p.add_argument(
        "--mix", default="default", help="e.g. default,callbackAfterUserOnlineCommand=30"
    )
    p.add_argument("--max-requests", type=int, default=500_000)
    p.add_argument("--replay-events", type=int, default=100_000)
    p.add_argument(
        "--replay-time-limit",
        type=float,
        default=150,
        help="stop the worker or a rebuild after this many seconds (the worker's prefix is checked)",
    )
    p.add_argument("--scale-sizes", default="1000,10000,100000,1000000")
    p.add_argument("--scale-duration", type=float, default=8.0)
    p.add_argument("--drain-timeout", type=float, default=60)
    p.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--database-name", default="openim_sync_bench")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--worker-class", default="gthread")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--conn-max-age", type=int, default=600)
    p.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="run openim_worker under nice -n N: receiving first, the backlog drains in idle time",
    )
    p.add_argument("--out", default=str(BENCH / "results"))
    prune_stage.add_arguments(p)
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.warmup = 5.0, 1, 1.5
        args.replay_events, args.scale_sizes, args.scale_duration = 10_000, "1000,100000", 4.0
        args.drain_timeout, args.replay_time_limit = 30, 30
    args.modes = args.modes.split(",")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.scale_sizes = [int(s) for s in args.scale_sizes.split(",")]
    stages = args.stages.split(",")
    if not args.database_url.startswith(("postgres://postgres@127.0.0.1", "postgres://127.0.0.1")):
        p.error("the benchmark only talks to PostgreSQL on 127.0.0.1")
    if args.database_name in ("openim_sync_a", "openim_sync_b", "openim_sync_c", "openim_sync_d"):
        p.error("that database belongs to the test suite")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logdir = Path(args.out) / stamp
    logdir.mkdir(parents=True, exist_ok=True)
    report = {
        "started": stamp,
        "command": "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "server": f"gunicorn {args.workers} x {args.worker_class} ({args.threads} threads), "
        f"CONN_MAX_AGE={args.conn_max_age}, DEBUG off, users={args.users}, groups={args.groups}"
        + (f", openim_worker under nice -n {args.worker_nice}" if args.worker_nice else ""),
        "load": [],
        "scale": [],
    }
    db = Database(args.database_url, args.database_name)
    server = Server(args, db, logdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        log(f"database {args.database_name}: recreate and migrate")
        db.recreate()
        subprocess.run(
            [PY, "manage.py", "migrate", "--no-input", "-v0"],
            cwd=ROOT, env=server.env("inline"), check=True,
        )  # fmt: skip
        db.connect()
        db.run(FLOOR_TABLE_SQL)
        handled = handled_commands()
        report["handled"] = sorted(handled)
        log(f"handled commands in the mix: {', '.join(sorted(handled))}")
        if "load" in stages:
            load_stage(args, db, server, logdir, handled, report)
        if "profile" in stages:
            profile_stage(args, db, server, logdir, handled, report)
        if "worker" in stages:
            worker_stage(args, db, server, logdir, handled, report)
        if "rebuild" in stages:
            rebuild_stage(args, db, server, logdir, handled, report)
        if "rebuild-sqlite" in stages:
            sqlite_rebuild_stage(args, db, server, logdir, handled, report)
        if "scale" in stages:
            scale_stage(args, db, server, logdir, handled, report)
        if "prune" in stages:
            prune_stage.run(sys.modules[__name__], args, db, server, logdir, handled, report)
    finally:
        cleanup()
    problems = [p for s in report["load"] for p in s["ours"]["problems"] + s["floor"]["problems"]]
    for key in ("worker", "rebuild", "rebuild_sqlite", "prune"):
        problems += report.get(key, {}).get("problems", [])
    problems += [p for s in report["scale"] for p in s["problems"]]
    report["verdict"] = "PASS" if not problems else f"FAIL ({len(problems)} problem(s))"
    (logdir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    text = render(report)
    (logdir / "report.md").write_text(text)
    print()
    print(text)
    print(f"Logs and report: {logdir}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
