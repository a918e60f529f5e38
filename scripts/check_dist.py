"""Check a built sdist and wheel against the source tree: ``python scripts/check_dist.py DIST...``.

The wheel must hold every file of the ``openim_sync`` package that a host needs at run time
(modules, migrations, templates, samples, the committed OpenAPI schema), the LICENSE in its
dist-info, and README, CHANGELOG, LICENSE and docs/*.md as data files (pip puts them in
``<prefix>/share/doc/django-openim-sync/``, docs/ beside the README so its links work there);
nothing else (no tests, no example project, no caches). The sdist must hold the same sources plus
pyproject.toml. The metadata's version is ``openim_sync.__version__`` and the license MIT.

Exits non-zero listing what is missing or extra. Used by scripts/smoke-wheel (CI) and
tests/test_packaging.py.
"""

import email.parser
import re
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "openim_sync"
DOC_DIR = "share/doc/django-openim-sync"
DATA_FILES = ("README.md", "CHANGELOG.md", "LICENSE")


def version():
    text = (PACKAGE / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M)[1]


def package_files():
    """Every file of the package a host needs: sources, migrations, templates, samples, schema."""
    files = set()
    for path in PACKAGE.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.add(path.relative_to(ROOT).as_posix())
    return files


def docs():
    return {path.name for path in (ROOT / "docs").glob("*.md")}


def expected_wheel():
    data = f"django_openim_sync-{version()}.data/data/{DOC_DIR}"
    return (
        package_files()
        | {f"{data}/{name}" for name in DATA_FILES}
        | {f"{data}/docs/{name}" for name in docs()}
        | {f"django_openim_sync-{version()}.dist-info/licenses/LICENSE"}
    )


def expected_sdist():
    prefix = f"django_openim_sync-{version()}"
    return {f"{prefix}/{name}" for name in package_files()} | {
        f"{prefix}/{name}"
        for name in (*DATA_FILES, "pyproject.toml", *(f"docs/{doc}" for doc in docs()))
    }


def check_metadata(text, where):
    metadata = email.parser.Parser().parsestr(text)
    problems = []
    if metadata["Version"] != version():
        problems.append(f"{where}: Version {metadata['Version']} != openim_sync {version()}")
    if metadata["License-Expression"] != "MIT":
        problems.append(f"{where}: License-Expression is {metadata['License-Expression']!r}")
    requires = metadata.get_all("Requires-Dist") or []
    if not any(re.fullmatch(r"[Dd]jango(<6\.2,>=5\.2|>=5\.2,<6\.2)", r) for r in requires):
        problems.append(f"{where}: no Django>=5.2,<6.2 in Requires-Dist {requires}")
    return problems


def check_wheel(path):
    with zipfile.ZipFile(path) as wheel:
        names = {name for name in wheel.namelist() if not name.endswith("/")}
        metadata = wheel.read(f"django_openim_sync-{version()}.dist-info/METADATA").decode()
    problems = [f"{path.name}: missing {name}" for name in sorted(expected_wheel() - names)]
    dist_info = f"django_openim_sync-{version()}.dist-info/"
    extra = {
        name
        for name in names - expected_wheel()
        if not (
            name.startswith(dist_info)
            and name.split("/")[-1] in ("METADATA", "WHEEL", "RECORD", "top_level.txt")
        )
    }
    problems += [f"{path.name}: unexpected {name}" for name in sorted(extra)]
    return problems + check_metadata(metadata, path.name)


def check_sdist(path):
    with tarfile.open(path) as sdist:
        names = {member.name for member in sdist.getmembers() if member.isfile()}
        pkg_info = sdist.extractfile(f"django_openim_sync-{version()}/PKG-INFO").read().decode()
    problems = [f"{path.name}: missing {name}" for name in sorted(expected_sdist() - names)]
    caches = sorted(name for name in names if "__pycache__" in name or name.endswith(".pyc"))
    problems += [f"{path.name}: unexpected {name}" for name in caches]
    return problems + check_metadata(pkg_info, path.name)


def main(paths):
    if not paths:
        sys.exit("usage: check_dist.py DIST_FILE... (a .whl and a .tar.gz)")
    problems = []
    kinds = set()
    for arg in paths:
        path = Path(arg)
        if path.suffix == ".whl":
            kinds.add("wheel")
            problems += check_wheel(path)
        elif path.name.endswith(".tar.gz"):
            kinds.add("sdist")
            problems += check_sdist(path)
        else:
            problems.append(f"{path.name}: neither a wheel nor an sdist")
    for kind in sorted({"wheel", "sdist"} - kinds):
        problems.append(f"no {kind} given")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check_dist: {', '.join(Path(p).name for p in paths)}: contents and metadata ok")


if __name__ == "__main__":
    main(sys.argv[1:])
