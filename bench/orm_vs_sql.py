"""What one mirror write costs through the writer (ORM) and as one raw upsert: a sizing experiment.

    .venv/bin/python bench/orm_vs_sql.py [--writes 3000]

Applies the same stream of user profile updates (``nickname``, ``face_url``, per-field versions)
to ``ImUser`` in the benchmark database twice, one transaction per update:

* ``writer``: ``writer.apply([Change(ImUser, ...)])`` as the pipeline does it (SELECT ... FOR
  UPDATE, then INSERT in a savepoint or UPDATE of every column);
* ``upsert``: one ``INSERT ... ON CONFLICT (user_id) DO UPDATE`` whose SET keeps each field's
  newest ``[version, event id]`` in SQL (jsonb arrays compare element by element).

Both end in the same rows (checked). Prints CPU (this process) and wall time per write, then the
CPU of the row lock alone (``first()`` against the writer's ``order_by()[:1]``). It is a
prototype to size the idea, not a replacement for the writer: the writer also handles presence
and tombstones, merged dict fields, values read from other rows, and every model.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/openim_sync_bench")

UPSERT = """
INSERT INTO openim_sync_imuser AS t (user_id, nickname, face_url, ex, gender, location,
    self_signature, allow_type, admin_forbid_type, custom, version, versions, last_event_id,
    created_at, updated_at)
VALUES (%(user)s, %(nickname)s, %(face_url)s, '', '', '', '', '', '', '{}', %(version)s,
    jsonb_build_object('nickname', %(stamp)s::jsonb, 'face_url', %(stamp)s::jsonb, 'present',
    %(stamp)s::jsonb), NULL, now(), now())
ON CONFLICT (user_id) DO UPDATE SET
    nickname = CASE WHEN coalesce(t.versions -> 'nickname', '[0, 0]') <= %(stamp)s::jsonb
        THEN EXCLUDED.nickname ELSE t.nickname END,
    face_url = CASE WHEN coalesce(t.versions -> 'face_url', '[0, 0]') <= %(stamp)s::jsonb
        THEN EXCLUDED.face_url ELSE t.face_url END,
    versions = t.versions || jsonb_strip_nulls(jsonb_build_object(
        'nickname', CASE WHEN coalesce(t.versions -> 'nickname', '[0, 0]') <= %(stamp)s::jsonb
            THEN %(stamp)s::jsonb END,
        'face_url', CASE WHEN coalesce(t.versions -> 'face_url', '[0, 0]') <= %(stamp)s::jsonb
            THEN %(stamp)s::jsonb END)),
    version = greatest(t.version, EXCLUDED.version),
    updated_at = now()
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection, transaction

    from openim_sync.models import ImUser
    from openim_sync.writer import Change, apply

    class FakeEvent:
        received_at = None

        def __init__(self, pk):
            self.pk = pk

    writes = [
        (f"u{n % args.users:06d}", f"Name {n}", f"https://cdn.example.com/{n}.png", 1000 + n)
        for n in range(args.writes)
    ]

    def reset():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE openim_sync_imuser RESTART IDENTITY CASCADE")

    def with_writer():
        for user, nickname, face_url, version in writes:
            with transaction.atomic():
                change = Change(
                    ImUser, {"user_id": user}, {"nickname": nickname, "face_url": face_url}
                )
                apply([change], event=FakeEvent(None), version=version)

    def with_upsert():
        for user, nickname, face_url, version in writes:
            params = {
                "user": user,
                "nickname": nickname,
                "face_url": face_url,
                "version": version,
                "stamp": json.dumps([version, None]),
            }
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(UPSERT, params)

    def snapshot():
        return sorted(ImUser.objects.values_list("user_id", "nickname", "face_url", "version"))

    results = {}
    for name, run in (("writer", with_writer), ("upsert", with_upsert)) * 2:
        reset()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        run()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        results.setdefault(name, []).append((cpu, wall, snapshot()))
        print(
            f"{name:6}: {1000 * cpu / len(writes):.3f} ms CPU, {1000 * wall / len(writes):.3f} ms "
            f"wall per write ({len(writes) / wall:.0f} writes/s, one transaction each)"
        )
    same = results["writer"][-1][2] == results["upsert"][-1][2]
    print(f"same final rows: {same}")

    # The row lock alone: ``first()`` (ORDER BY added) against the writer's ``order_by()[:1]``.
    from openim_sync import writer

    with_first = lambda model, key: model.objects.select_for_update().filter(**key).first()  # noqa: E731
    users = list(ImUser.objects.values_list("user_id", flat=True))
    for name, lock in (("first()", with_first), ("writer", writer._lock_one)) * 2:
        with transaction.atomic():
            cpu0 = time.process_time()
            for user in users:
                lock(ImUser, {"user_id": user})
            cpu = time.process_time() - cpu0
        print(f"lock {name:8}: {1000 * cpu / len(users):.3f} ms CPU per SELECT ... FOR UPDATE")
    reset()


if __name__ == "__main__":
    main()
