"""Packaging: the sdist and wheel hold what a host needs (scripts/check_dist.py, which CI's
scripts/smoke-wheel also runs), and the metadata, the matrix and the changelog agree on versions."""

import importlib.util
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import openim_sync

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def noxfile():
    """noxfile.py, loaded once (nox registers its sessions on import)."""
    pytest.importorskip("nox", reason="nox is not installed (requirements.txt, the dev extra)")
    return load(ROOT / "noxfile.py", "noxfile_under_test")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build", reason="python -m build is not installed (requirements.txt)")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def check_dist(*paths):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_dist.py"), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_built_archives_hold_everything(dist):
    result = check_dist(*dist)
    assert result.returncode == 0, result.stderr


def test_the_wheel_has_the_docs_and_the_schema(dist):
    wheel, _ = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"django_openim_sync-{openim_sync.__version__}.data/data/share/doc/django-openim-sync"
    assert {
        "openim_sync/api/openapi.json",
        "openim_sync/migrations/0001_initial.py",
        f"{data}/CHANGELOG.md",
        f"{data}/docs/security.md",
    } <= names
    assert not any(name.startswith(("tests/", "project/", "bench/")) for name in names)


def test_check_dist_fails_on_a_wheel_missing_a_file(dist, tmp_path):
    wheel, sdist = dist
    broken = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            if item.filename != "openim_sync/api/openapi.json":
                target.writestr(item, source.read(item))
    result = check_dist(broken, sdist)
    assert result.returncode == 1
    assert "missing openim_sync/api/openapi.json" in result.stderr


def test_check_dist_fails_on_a_stray_file(dist, tmp_path):
    wheel, sdist = dist
    broken = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("project/settings.py", "")
    result = check_dist(broken, sdist)
    assert result.returncode == 1
    assert "unexpected project/settings.py" in result.stderr


def test_one_version_everywhere():
    version = openim_sync.__version__
    assert PYPROJECT["project"]["version"] == version
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for wheel in re.findall(r"django_openim_sync-([\w.]+)-py3-none-any\.whl", readme):
        assert wheel == version, "the README installs a wheel of another version"


def test_classifiers_match_the_matrix(noxfile):
    classifiers = PYPROJECT["project"]["classifiers"]
    djangos = [c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Framework :: Django ::")]
    pythons = [
        c.rsplit(" ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert djangos == list(noxfile.DJANGO)
    assert pythons == list(noxfile.PYTHON)
    assert PYPROJECT["project"]["requires-python"] == f">={noxfile.PYTHON[0]}"
    newest = noxfile.DJANGO[-1]
    upper = f"{newest.split('.')[0]}.{int(newest.split('.')[1]) + 1}"
    assert f"Django>={noxfile.DJANGO[0]},<{upper}" in PYPROJECT["project"]["dependencies"]
    assert noxfile.next_django() == upper


def test_the_matrix_has_every_combination_and_ci_runs_enough(noxfile):
    combinations = {
        f"django{d.replace('.', '')}-py{p.replace('.', '')}-{db}"
        for d in noxfile.DJANGO
        for p in noxfile.PYTHON
        for db in ("sqlite", "postgres")
    }
    assert set(noxfile.nox.options.sessions) == combinations
    sessions = {
        (d, p, db): f"django{d.replace('.', '')}-py{p.replace('.', '')}-{db}"
        for d in noxfile.DJANGO
        for p in noxfile.PYTHON
        for db in ("sqlite", "postgres")
    }
    registry = noxfile.nox.registry.get()
    tags = {combination: set(registry[name].tags) for combination, name in sessions.items()}
    in_ci = {c for c, t in tags.items() if {"ci", "make-test"} & t}
    newest = noxfile.NEWEST_PYTHON
    # Every Django on both databases with the newest Python, and at least one on the older one.
    assert {(d, db) for d, p, db in in_ci if p == newest} == {
        (d, db) for d in noxfile.DJANGO for db in ("sqlite", "postgres")
    }
    assert any(p != newest for _, p, _ in in_ci)
    # make test (.venv: the newest Django, the newest Python) stands for the make-test sessions.
    make_test = {c for c, t in tags.items() if "make-test" in t}
    assert make_test == {(noxfile.DJANGO[-1], newest, db) for db in ("sqlite", "postgres")}


def test_postgres_sessions_get_their_own_database(noxfile, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5433/base?sslmode=disable")
    first = noxfile.database_url("django52-py313-postgres")
    second = noxfile.database_url("django61-py312-postgres")
    assert first == "postgres://u:p@db.example:5433/base_django52_py313_postgres?sslmode=disable"
    assert first != second


def test_the_tasks_backport_is_an_extra_for_django_5_2():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(req.startswith("django-tasks>=") for req in extras["tasks-backport"])
    assert {"test", "docs", "dev"} <= set(extras)
    assert any(req.startswith("nox") for req in extras["dev"])
