"""``python -m openim_sync --version`` prints the installed app's version."""

import argparse

from openim_sync import __version__


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m openim_sync",
        description="openim-sync is a Django app: add it to INSTALLED_APPS and use manage.py.",
    )
    parser.add_argument("--version", action="version", version=f"django-openim-sync {__version__}")
    parser.parse_args(argv)
    parser.print_help()


if __name__ == "__main__":
    main()
