"""Habits of Django users: every option of the app's commands says what it does, ``--version``
names the app, the example project's commands print no warnings, and ``python manage.py test``
runs this suite (project/test_runner.py)."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

import openim_sync
from project import test_runner

ROOT = Path(__file__).parent.parent
APP_COMMANDS = sorted(name for name, app in get_commands().items() if app == "openim_sync")


def test_the_app_has_its_commands():
    assert {"openim_prune", "openim_replay", "openim_send_samples", "openim_worker"} <= set(
        APP_COMMANDS
    )


def options(command_name):
    command = load_command_class("openim_sync", command_name)
    parser = command.create_parser("manage.py", command_name)
    return command, [action for action in parser._actions if action.option_strings]


@pytest.mark.parametrize("command_name", APP_COMMANDS)
def test_every_option_has_help_text(command_name):
    command, actions = options(command_name)
    assert command.help.strip(), f"{command_name} has no help"
    missing = [
        "/".join(action.option_strings)
        for action in actions
        if not action.help or action.help == argparse.SUPPRESS or not action.help.strip()
    ]
    assert missing == [], f"{command_name}: options without help: {missing}"


@pytest.mark.parametrize("command_name", APP_COMMANDS)
def test_version_is_the_apps(command_name):
    command, _ = options(command_name)
    assert command.get_version().startswith(f"django-openim-sync {openim_sync.__version__}")


def manage(*args, **env):
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENIM_SYNC_", "DJANGO_")) and key != "DATABASE_URL"
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_example_project_prints_no_warning():
    """W002 (Tencent unauthenticated) used to be printed by nearly every command."""
    result = manage("check")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "openim_sync." not in result.stdout + result.stderr


def test_turning_tencent_authentication_off_is_warned_about():
    result = manage("check", OPENIM_SYNC_TENCENT_TOKENS="")
    assert "(openim_sync.W002)" in result.stderr + result.stdout


def test_manage_py_test_runs_this_suite():
    result = manage("test", "tests.test_compat", "-v", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "settings: project.test_settings" in result.stdout
    assert "tests/test_compat.py::test_the_source_matches_the_django_version PASSED" in (
        result.stdout
    )
    assert " 4 passed" in result.stdout


def test_manage_py_test_fails_when_a_test_fails(tmp_path):
    failing = tmp_path / "test_failing.py"
    failing.write_text("def test_fails():\n    assert 1 == 2\n")
    result = manage("test", str(failing))
    assert result.returncode == 1
    assert "1 failed" in result.stdout


def test_manage_py_test_without_pytest_points_to_make_test(tmp_path):
    """In an environment without pytest: a clear message, not 0 tests and exit 0."""
    blocker = tmp_path / "pytest.py"
    blocker.write_text("raise ImportError('pytest is not installed here')\n")
    result = manage("test", PYTHONPATH=str(tmp_path))
    assert result.returncode != 0
    assert "make test" in result.stderr
    assert "pytest is not installed" in result.stderr


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("tests.test_api", "tests/test_api.py"),
        ("tests.test_api.test_x", "tests/test_api.py::test_x"),
        ("tests", "tests"),
        ("tests/test_api.py::test_x", "tests/test_api.py::test_x"),
        ("no.such.module", "no.such.module"),
    ],
)
def test_django_labels_become_pytest_paths(label, expected):
    assert test_runner.label_to_path(label) == expected


def test_runner_options_map_to_pytest():
    runner = test_runner.PytestRunner(
        verbosity=2, failfast=True, keepdb=True, test_name_patterns=["api", "not slow"]
    )
    assert runner.pytest_args(["tests.test_api"]) == [
        "-p",
        "no:cacheprovider",
        "-v",
        "--exitfirst",
        "--reuse-db",
        "-k",
        "(api) and (not slow)",
        "tests/test_api.py",
    ]
