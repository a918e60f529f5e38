"""Load generator: N keep-alive HTTP/1.1 connections sending OpenIM callbacks, asyncio, stdlib only.

Run by ``bench/run.py`` as a separate process; usable alone::

    .venv/bin/python bench/loadgen.py --port 8765 --prefix /openim/callback --concurrency 16 \
        --duration 10 --out /tmp/load.json

Requests look like OpenIM's (``pkg/common/webhook/http_client.go``): ``POST <prefix>/<command>``,
``Content-Type: application/json; charset=utf-8``, an ``operationID`` header, compact JSON with a
trailing newline, Go's User-Agent. Two events that touch the same mirror row are never in flight
together and leave in generation order, so the expected final mirror is well defined. Bounded by
``--duration`` and ``--max-requests``; talks to 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from workload import World, expected_mirror, parse_mix

HOST = "127.0.0.1"
#: OpenIM's success envelope, however the server spaces its JSON.
SUCCESS = re.compile(rb'"errCode":\s*0\s*[,}]')
LOOKAHEAD = 512
TIMEOUT = 10.0


class Dispatcher:
    """Hands out events so that no two in flight share a key and per-key order is kept."""

    def __init__(self, world, deadline, max_requests):
        self.world = world
        self.deadline = deadline
        self.max_requests = max_requests
        self.pending = []
        self.busy = set()
        self.issued = 0
        self.changed = asyncio.Event()

    def _fill(self):
        while len(self.pending) < LOOKAHEAD:
            self.pending.append(self.world.next_event())

    def done(self):
        return self.issued >= self.max_requests or time.monotonic() >= self.deadline

    async def take(self):
        while not self.done():
            self._fill()
            blocked = set()
            for i, event in enumerate(self.pending):
                keys = event.keys
                if any(k in self.busy or k in blocked for k in keys):
                    blocked.update(keys)
                    continue
                del self.pending[i]
                self.busy.update(keys)
                self.issued += 1
                return event
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.5)
        return None

    def release(self, event):
        self.busy.difference_update(event.keys)
        self.changed.set()


class Stats:
    def __init__(self):
        self.latencies = []
        self.errors = Counter()
        self.sent = Counter()  # per command: requests written
        self.ok = Counter()  # per command: 200 with errCode 0
        self.sent_events = []  # (idx, command, op) of every event written
        self.tainted = set()  # keys of events whose fate is unknown


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    body = await reader.readexactly(length) if length else b""
    return status, body, close


def request_bytes(prefix, port, event):
    head = (
        f"POST {prefix}{event.path} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        "User-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(event.body)}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Operationid: {event.operation_id}\r\n"
        "Accept-Encoding: gzip\r\n\r\n"
    )
    return head.encode() + event.body


async def connection(port, prefix, dispatcher, stats, check_body):
    reader = writer = None
    try:
        while True:
            event = await dispatcher.take()
            if event is None:
                return
            stats.sent[event.command] += 1
            stats.sent_events.append((event.idx, event.command, event.op))
            start = time.perf_counter()
            ok = False
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(request_bytes(prefix, port, event))
                status, body, close = await asyncio.wait_for(read_response(reader), TIMEOUT)
                stats.latencies.append(time.perf_counter() - start)
                if status != 200:
                    stats.errors[f"http {status}"] += 1
                elif check_body and not SUCCESS.search(body):
                    stats.errors["errCode != 0"] += 1
                else:
                    ok = True
                    stats.ok[event.command] += 1
                if status >= 500 or status == 0:
                    stats.tainted.update(event.keys)
                if close:
                    writer.close()
                    reader = writer = None
            except TimeoutError:
                stats.errors["timeout"] += 1
                stats.tainted.update(event.keys)
                writer.close()
                reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                stats.errors[type(exc).__name__] += 1
                stats.tainted.update(event.keys)
                if writer is not None:
                    writer.close()
                reader = writer = None
            finally:
                if not ok and not stats.tainted.issuperset(event.keys):
                    # A 4xx reply: stored as rejected, nothing applied.
                    stats.tainted.update(event.keys)
                dispatcher.release(event)
    finally:
        if writer is not None:
            writer.close()


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def main_async(args):
    world = World(args.users, args.groups, parse_mix(args.mix), seed=args.seed)
    for _ in range(args.skip):
        world.next_event()  # start from a warmed-up world (groups and friendships exist)
    deadline = time.monotonic() + args.duration
    dispatcher = Dispatcher(world, deadline, args.max_requests)
    stats = Stats()
    cpu0, wall0 = os.times(), time.perf_counter()
    tasks = [
        asyncio.create_task(connection(args.port, args.prefix, dispatcher, stats, args.check_body))
        for _ in range(args.concurrency)
    ]
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - wall0
    cpu1 = os.times()
    return world, stats, wall, (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)


def summarise(args, world, stats, wall, cpu):
    lat = sorted(stats.latencies)
    total = sum(stats.sent.values())
    result = {
        "concurrency": args.concurrency,
        "prefix": args.prefix,
        "requests": total,
        "ok": sum(stats.ok.values()),
        "wall_s": wall,
        "rps": total / wall if wall else 0,
        "latency_ms": {
            name: (percentile(lat, q) or 0) * 1000
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        },
        "errors": dict(stats.errors),
        "client_cpu_s": cpu,
        "sent_by_command": dict(stats.sent),
        "ok_by_command": dict(stats.ok),
        "tainted_keys": len(stats.tainted),
    }
    if args.handled is not None:
        handled = set(filter(None, args.handled.split(",")))
        ops = [(command, op) for _, command, op in sorted(stats.sent_events)]
        expected = expected_mirror(ops, handled)
        if stats.tainted:
            from workload import key_str

            tainted = {key_str(*key[1:]) for key in stats.tainted}
            for section in expected.values():
                for key in list(section):
                    if key in tainted:
                        del section[key]
        result["expected"] = expected
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="/openim/callback")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (upper bound)")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--mix", default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip", type=int, default=0, help="generate and drop N events first")
    parser.add_argument("--check-body", action="store_true", help='require "errCode":0 replies')
    parser.add_argument(
        "--handled", default=None, help="comma-separated handled commands: compute the mirror"
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.duration > 900 or args.max_requests > 5_000_000:
        parser.error("refusing a run longer than 15 minutes or 5,000,000 requests")
    world, stats, wall, cpu = asyncio.run(main_async(args))
    result = summarise(args, world, stats, wall, cpu)
    Path(args.out).write_text(json.dumps(result))
    print(
        f"{result['requests']} requests in {wall:.1f}s = {result['rps']:.0f}/s, "
        f"p99 {result['latency_ms']['p99']:.1f} ms, errors {result['errors'] or 'none'}"
    )


if __name__ == "__main__":
    main()
