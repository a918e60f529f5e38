"""Profile the inline receive path in one process, without HTTP: where the CPU goes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/openim_sync_bench \
        .venv/bin/python bench/profile_inprocess.py [--events 3000] [--floor]

Posts generated events through Django's test client (middleware, view, pipeline, writer; no
gunicorn, no sockets) against the benchmark database, under cProfile, and prints wall and CPU
time per delivery plus the top functions. ``--floor`` profiles the floor view instead. Run it
after ``bench/run.py`` has created the database.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/openim_sync_bench")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--mix", default="default", help="as bench/run.py --mix")
    parser.add_argument("--repeat", type=int, default=1, help="measure N times, print each")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--queries", action="store_true", help="print the SQL one delivery of each command runs"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from workload import World, parse_mix

    client = Client()
    world = World(5000, 500, parse_mix(args.mix), seed=11)
    events = [world.next_event() for _ in range(args.events)]
    prefix = "/bench/floor" if args.floor else "/openim/callback"
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE openim_sync_callbackevent, openim_sync_imuser, openim_sync_imgroup, "
            "openim_sync_groupmember, openim_sync_friend, openim_sync_onlinesession, "
            "bench_floor RESTART IDENTITY CASCADE"
        )

    def send(batch):
        for event in batch:
            response = client.post(
                prefix + event.path,
                event.body,
                content_type="application/json; charset=utf-8",
                headers={"operationID": event.operation_id},
            )
            assert response.status_code == 200, response.content

    send(events[:200])  # warm up
    if args.queries:
        from django.test.utils import CaptureQueriesContext

        seen = set()
        for event in events[200:]:
            if event.command in seen:
                continue
            seen.add(event.command)
            with CaptureQueriesContext(connection) as captured:
                send([event])
            print(f"\n{event.command}: {len(captured)} statements")
            for query in captured:
                print(f"  {query['time']}s  {query['sql'][:160]}")
        return
    profiler = None if args.no_profile else cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    send(events[200:])
    if profiler:
        profiler.disable()
    n = len(events) - 200
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        f"{n} deliveries: {1000 * wall / n:.2f} ms wall, {1000 * cpu / n:.2f} ms CPU per delivery"
        f" ({n / wall:.0f}/s sequential)"
    )
    if profiler:
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
