"""The test matrix: every supported Django on every supported Python, on SQLite and PostgreSQL.

    .venv/bin/nox --list                       # every session
    .venv/bin/nox -s django52-py313-postgres   # one combination
    .venv/bin/nox -t ci                        # what .ci/run runs besides `make test` (below)
    .venv/bin/nox -s django-next               # the next Django's pre-release (allowed to fail)
    .venv/bin/nox -s django61-py313-sqlite -- -k api   # arguments after -- go to pytest

PostgreSQL sessions use the server in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/
openim_sync) with a database name of their own, ``<name>_<session>`` (pytest-django prefixes
``test_``), so sessions never share a test database. SQLite sessions ignore DATABASE_URL.

Each session installs the app from this checkout with the extras a host would use
(``postgres``, ``deferred``) plus ``test``; on Django 5.2 also ``tasks-backport`` (django.tasks
is in Django from 6.0; openim_sync.compat imports either).
"""

import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import nox
from packaging.version import Version

ROOT = Path(__file__).parent
DJANGO = ("5.2", "6.0", "6.1")
PYTHON = ("3.12", "3.13")
DATABASES = ("sqlite", "postgres")
NEWEST_PYTHON = PYTHON[-1]
# What .ci/run runs: every Django on both databases with the newest Python, and the LTS on the
# older Python. The newest Django on the newest Python is what `make test` runs in .venv on SQLite
# and on PostgreSQL just before (tagged "make-test": .ci/run runs those sessions only if .venv
# turns out to be another combination). Tagged "ci": the rest.
CI_ON_OLDER_PYTHON = {("5.2", "sqlite")}
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/openim_sync"
PYTEST = ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider")

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = [
    f"django{d.replace('.', '')}-py{p.replace('.', '')}-{db}"
    for d in DJANGO
    for p in PYTHON
    for db in DATABASES
]


@functools.cache
def interpreter(version):
    """Python ``version`` as a path: this one, one on PATH, pyenv's or a usual prefix's (a pyenv
    shim on PATH may not run it); else the bare version, which nox skips (fails on CI)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        shutil.which(f"python{version}"),
        *sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True),
        f"/usr/local/bin/python{version}",
        f"/usr/bin/python{version}",
    ]
    check = f"import sys; sys.exit(sys.version_info[:2] != ({version.replace('.', ', ')}))"
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            try:
                subprocess.run([candidate, "-c", check], check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError):
                continue
            return str(candidate)
    return version


def next_django():
    """The Django series after the newest one pyproject.toml allows (``Django<6.2`` → 6.2)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        found = re.fullmatch(r"Django>=[\d.]+,<(\d+)\.(\d+)", requirement.replace(" ", ""))
        if found:
            return f"{found[1]}.{found[2]}"
    raise RuntimeError("pyproject.toml: no Django>=X,<Y.Z requirement")


def django_versions():
    """Every Django version on the package index, pre-releases included (pip index versions)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "Django", "--pre"],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",")]
    return []


def database_url(session_name):
    """DATABASE_URL with this session's own database name."""
    base = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    parts = urlsplit(base)
    name = parts.path.lstrip("/") or "openim_sync"
    suffix = re.sub(r"[^a-z0-9]+", "_", session_name.lower()).strip("_")
    return urlunsplit(parts._replace(path=f"/{name}_{suffix}"))


def install(session, django_spec, *, backport):
    extras = "postgres,deferred,test" + (",tasks-backport" if backport else "")
    session.install("-e", f".[{extras}]", django_spec)


def run_tests(session, database):
    env = {"DATABASE_URL": database_url(session.name) if database == "postgres" else None}
    session.run(
        "python", "-c", "import django, sys; print('Django', django.get_version(), sys.version)"
    )
    session.run(*PYTEST, *session.posargs, env=env)


def make_session(django, python, database):
    name = f"django{django.replace('.', '')}-py{python.replace('.', '')}-{database}"
    tags = [f"django{django.replace('.', '')}", database, f"py{python.replace('.', '')}"]
    if python == NEWEST_PYTHON and django == DJANGO[-1]:
        tags.append("make-test")
    elif python == NEWEST_PYTHON or (django, database) in CI_ON_OLDER_PYTHON:
        tags.append("ci")

    @nox.session(name=name, python=interpreter(python), tags=tags)
    def tests(session):
        install(session, f"Django~={django}.0", backport=django == "5.2")
        run_tests(session, database)

    tests.__doc__ = f"Django {django}, Python {python}, {database}."
    return tests


for _django in DJANGO:
    for _python in PYTHON:
        for _database in DATABASES:
            make_session(_django, _python, _database)


@nox.session(
    name="django-next", python=interpreter(NEWEST_PYTHON), tags=["prerelease"], default=False
)
def django_next(session):
    """The next Django's newest pre-release (or release), on SQLite and PostgreSQL; skipped while
    PyPI has none. Outside the supported range, so allowed to fail."""
    series = next_django()
    upper = f"{series.split('.')[0]}.{int(series.split('.')[1]) + 1}"
    spec = f"Django>={series}a0,<{upper}"
    found = [v for v in django_versions() if Version(f"{series}a0") <= Version(v) < Version(upper)]
    if not found:
        session.skip(f"no Django {series} pre-release on PyPI yet")
    session.log(f"Django {series} on PyPI: {', '.join(found)}")
    install(session, f"Django~={DJANGO[-1]}.0", backport=False)
    # pyproject.toml says Django<{series}: install the pre-release over it, on purpose.
    session.install("--pre", "--upgrade", spec)
    run_tests(session, "sqlite")
    run_tests(session, "postgres")
