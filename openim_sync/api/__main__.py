"""``python -m openim_sync.api --check | --write``: compare or regenerate openapi.json.

Runs with the example project's settings unless DJANGO_SETTINGS_MODULE says otherwise.
"""

import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m openim_sync.api", description="Write or check openim_sync/api/openapi.json."
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="regenerate the committed schema")
    group.add_argument("--check", action="store_true", help="exit 1 if it differs from the code")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from openim_sync.api.schema import COMMITTED, build_schema, render

    text = render(build_schema())
    if args.write:
        COMMITTED.write_text(text)
        print(f"wrote {COMMITTED}")
        return 0
    if not COMMITTED.exists() or COMMITTED.read_text() != text:
        print(f"{COMMITTED} is out of date: run scripts/update-openapi, commit it", file=sys.stderr)
        return 1
    print(f"{COMMITTED} matches the code")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
