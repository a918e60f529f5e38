"""``python manage.py test`` runs the project's pytest suite, the same as ``make test``.

The suite is written for pytest (pytest-django fixtures, parametrised tests), which Django's own
runner cannot find: without this runner ``manage.py test`` would run 0 tests and exit 0. Pytest runs
in its own process with the settings pyproject.toml names (``project.test_settings``), on SQLite
or on PostgreSQL when DATABASE_URL is set, exactly as ``make test`` runs it.

Labels may be pytest paths or node ids (``tests/test_api.py::test_x``) or Django-style dotted
names (``tests.test_api``); ``-k``, ``--keepdb`` (``--reuse-db``), ``--failfast`` and
``-v`` map to pytest's options.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_PYTEST = (
    "manage.py test runs this project's pytest suite, and pytest is not installed in this "
    "environment ({python}). Run `make test` (it creates .venv with everything the tests need), "
    "or install the test requirements: pip install -r requirements.txt"
)


class PytestRunner:
    """A Django TEST_RUNNER that hands the run to pytest and returns its exit status."""

    def __init__(self, verbosity=1, failfast=False, keepdb=False, test_name_patterns=None, **kw):
        self.verbosity = verbosity
        self.failfast = failfast
        self.keepdb = keepdb
        self.patterns = test_name_patterns or []

    @classmethod
    def add_arguments(cls, parser):
        if "--failfast" not in parser._option_string_actions:  # Django 5.2's test command has it
            parser.add_argument(
                "--failfast",
                action="store_true",
                help="Stop at the first failing test (pytest's --exitfirst).",
            )
        parser.add_argument(
            "--keepdb",
            action="store_true",
            help="Keep the test database between runs (pytest-django's --reuse-db).",
        )
        parser.add_argument(
            "-k",
            action="append",
            dest="test_name_patterns",
            help="Only run tests matching this pytest -k expression (repeatable: all must match).",
        )

    def pytest_args(self, test_labels):
        args = ["-p", "no:cacheprovider"]
        if self.verbosity == 0:
            args.append("-q")
        elif self.verbosity >= 2:
            args.append("-" + "v" * (self.verbosity - 1))
        if self.failfast:
            args.append("--exitfirst")
        if self.keepdb:
            args.append("--reuse-db")
        if self.patterns:
            args += ["-k", " and ".join(f"({pattern})" for pattern in self.patterns)]
        return args + [label_to_path(label) for label in test_labels]

    def run_tests(self, test_labels, **kwargs):
        try:
            import pytest  # noqa: F401
            import pytest_django  # noqa: F401
        except ImportError:
            sys.exit(NO_PYTEST.format(python=sys.executable))
        env = dict(os.environ)
        # manage.py sets DJANGO_SETTINGS_MODULE=project.settings; pytest-django would prefer it
        # to pyproject.toml's test settings.
        env.pop("DJANGO_SETTINGS_MODULE", None)
        command = [sys.executable, "-m", "pytest", *self.pytest_args(test_labels)]
        return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def label_to_path(label):
    """``tests.test_api`` → ``tests/test_api.py``; ``tests.test_api.test_x`` →
    ``tests/test_api.py::test_x``; anything else (a path, a node id) unchanged."""
    if "/" in label or "::" in label or label.endswith(".py"):
        return label
    parts = label.split(".")
    for end in range(len(parts), 0, -1):
        module = ROOT.joinpath(*parts[:end])
        if module.with_suffix(".py").is_file():
            return "::".join([f"{'/'.join(parts[:end])}.py", *parts[end:]])
        if module.is_dir() and end == len(parts):
            return "/".join(parts)
    return label
