"""Summarise py-spy ``--format raw`` (collapsed stacks) output: where the receiver's time goes.

    .venv/bin/python bench/profile_summary.py bench/results/<run>/profile.txt [--top 40]

Prints the share of on-CPU samples spent inside each function (inclusive), for the project's
code and the libraries it calls, plus a few buckets (JSON, DRF validation, ORM SQL compilation,
the database driver, gunicorn) that show the cost structure at a glance.
"""

import argparse
import re
from collections import Counter

BUCKETS = {
    "database driver (psycopg: send query, wait for PostgreSQL)": re.compile(r"psycopg/"),
    "ORM: SQL compilation (compiler.py)": re.compile(r"django/db/models/sql/compiler\.py"),
    "ORM: model instances (Model.__init__, from_db)": re.compile(r"django/db/models/base\.py"),
    "ORM: transaction.atomic / savepoints": re.compile(r"django/db/transaction\.py"),
    "DRF serializer validation": re.compile(r"rest_framework/"),
    "JSON encode/decode": re.compile(r"json/"),
    "writer.apply": re.compile(r"apply \(openim_sync/writer\.py"),
    "pipeline.process": re.compile(r"process \(openim_sync/pipeline\.py"),
    "pipeline.receive (store the event)": re.compile(r"_receive \(openim_sync/pipeline\.py"),
    "Django middleware + request/response": re.compile(r"django/core/handlers/"),
    "gunicorn (HTTP parsing, socket I/O)": re.compile(r"gunicorn/"),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()
    total = 0
    inclusive, self_time, buckets = Counter(), Counter(), Counter()
    for name in args.files:
        with open(name) as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                frames = stack.split(";")
                total += n
                for frame in set(frames):
                    inclusive[_short(frame)] += n
                self_time[_short(frames[-1])] += n
                for label, pattern in BUCKETS.items():
                    if pattern.search(stack):
                        buckets[label] += n
    if not total:
        print("no samples")
        return
    print(f"{total} samples")
    print("\nBuckets (inclusive; they overlap):")
    for label, n in buckets.most_common():
        print(f"  {100 * n / total:5.1f}%  {label}")
    print(f"\nTop {args.top} functions, inclusive:")
    for frame, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print(f"\nTop {args.top} functions, self:")
    for frame, n in self_time.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {frame}")


def _short(frame):
    frame = re.sub(r"/\S*/site-packages/", "", frame)
    frame = re.sub(r"/work/main/", "", frame)
    return re.sub(r":\d+\)", ")", frame)


if __name__ == "__main__":
    main()
