"""The docs: every setting documented with its default, every page in the site's nav, the API
page generated from the schema, the site built without warnings, and the README's snippets run
as written (the curls of "Try it" against the example project; "Add it to your project" is run
by scripts/smoke-wheel in a fresh host, and docs/installation.md repeats it exactly)."""

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from openim_sync.conf import DEFAULTS

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def section(text, heading):
    """The text under ``heading`` up to the next heading of the same or a higher level (lines
    in fenced code blocks, such as shell comments, are not headings)."""
    level = len(heading.split(" ")[0])
    lines = text.splitlines(keepends=True)
    start = lines.index(heading + "\n") + 1
    fenced = False
    for index in range(start, len(lines)):
        line = lines[index]
        if line.startswith("```"):
            fenced = not fenced
        found = re.match(r"(#+) ", line)
        if not fenced and found and len(found[1]) <= level:
            return "".join(lines[start:index])
    return "".join(lines[start:])


def code_blocks(text, language):
    return [m[1] for m in re.finditer(rf"(?ms)^```{language}\n(.*?)^```$", text)]


# --- Configuration ----------------------------------------------------------------------------


def documented_default(value):
    if value is None:
        return "None"
    return json.dumps(value)


def settings_table():
    text = section((DOCS / "configuration.md").read_text(), "## Every setting")
    rows = re.findall(r"(?m)^\| `([A-Z_]+)` \| `(.*?)` \| (.+) \|$", text)
    return {key: (default, meaning) for key, default, meaning in rows}


def test_every_setting_is_documented_with_its_default():
    table = settings_table()
    missing = sorted(set(DEFAULTS) - set(table))
    assert missing == [], f"docs/configuration.md does not document {missing}"
    unknown = sorted(set(table) - set(DEFAULTS))
    assert unknown == [], f"docs/configuration.md documents settings that do not exist: {unknown}"
    for key, value in DEFAULTS.items():
        assert table[key][0] == documented_default(value), key
        assert len(table[key][1]) > 20, f"{key}: say what it does"


# --- The site ---------------------------------------------------------------------------------


def nav_pages(entries):
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            if isinstance(value, list):
                yield from nav_pages(value)
            else:
                yield value


def mkdocs_config():
    # mkdocs.yml has no Python tags, so the safe loader reads it.
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = list(nav_pages(mkdocs_config()["nav"]))
    pages = sorted(path.name for path in DOCS.glob("*.md"))
    assert sorted(nav) == pages
    assert len(nav) == len(set(nav))


def test_the_site_has_the_issue_s_pages():
    nav = set(nav_pages(mkdocs_config()["nav"]))
    required = ["index", "installation", "configuration", "callbacks", "security", "operations"]
    required += ["performance", "api", "changelog"]
    assert {f"{name}.md" for name in required} <= nav


def test_mkdocs_builds_strict(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mkdocs is not installed here (the docs extra; scripts/bootstrap installs it)")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    changelog = (tmp_path / "site" / "changelog" / "index.html").read_text()
    assert "Keep a Changelog" in changelog  # CHANGELOG.md itself, put there by the hook
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "/openim/api/users/" in api


# --- The read API page ------------------------------------------------------------------------


def load_api_docs():
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_page_is_generated_from_the_committed_schema():
    result = subprocess.run(
        [sys.executable, "scripts/api_docs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr + " (run scripts/update-openapi)"


def test_api_page_check_fails_when_the_page_is_stale():
    api_docs = load_api_docs()
    page = (DOCS / "api.md").read_text()
    stale = page.replace("| GET | `/openim/api/users/` |", "| GET | `/openim/api/people/` |")
    assert stale != page
    assert api_docs.render(stale) == page


def test_api_page_lists_every_path_filter_and_webhook():
    schema = json.loads((ROOT / "openim_sync" / "api" / "openapi.json").read_text())
    page = (DOCS / "api.md").read_text()
    for path, item in schema["paths"].items():
        assert f"`/openim/api{path}`" in page
        for parameter in item["get"].get("parameters", []):
            assert f"`{parameter['name']}`" in page
    for name in schema["webhooks"]:
        assert f"`{name.split('.', 1)[1]}`" in page


# --- The README's snippets --------------------------------------------------------------------


def test_installation_page_repeats_the_readme_snippets_exactly():
    readme = section(README.read_text(), "## Add it to your project")
    readme = readme.split("\n### ")[0]
    page = section((DOCS / "installation.md").read_text(), "## Add it to a project")
    assert code_blocks(page, "python") == code_blocks(readme, "python")
    assert code_blocks(page, "sh") == code_blocks(readme, "sh")[1:]  # all but the pip line


def test_readme_urls_snippet_imports_what_it_uses():
    readme = section(README.read_text(), "## Add it to your project")
    urls = next(block for block in code_blocks(readme, "python") if "urlpatterns" in block)
    namespace = {"urlpatterns": []}
    exec(compile(urls, "README urls.py", "exec"), namespace)  # include and path are imported
    assert namespace["urlpatterns"][0].pattern.describe().startswith("'openim/'")


def json_objects(text):
    """The JSON objects in curl's output (replies have no trailing newline, so they run on)."""
    decoder, objects, index = json.JSONDecoder(), [], 0
    while (index := text.find("{", index)) >= 0:
        value, index = decoder.raw_decode(text, index)
        objects.append(value)
    return objects


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def example_server(tmp_path):
    """The example project as `make run` serves it (its own settings, no OPENIM_SYNC_* set)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENIM_SYNC_", "DJANGO_")) and key != "DATABASE_URL"
    }
    env.update(SQLITE_PATH=str(tmp_path / "example.sqlite3"), PYTHONUNBUFFERED="1")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.05)
        yield port, env
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_readme_try_it_commands_work_as_written(example_server):
    """Every shell block of "Try it", with only the port (and the Python) substituted."""
    for tool in ("bash", "curl", "sha256sum"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    port, env = example_server
    blocks = code_blocks(section(README.read_text(), "## Try it"), "sh")
    assert len(blocks) == 3
    for block in blocks:
        script = block.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        script = script.replace(".venv/bin/python", sys.executable)
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        curls = len(re.findall(r"(?m)^curl ", block))
        replies = json_objects(result.stdout)
        if curls:
            assert len(replies) == curls, result.stdout
            for reply in replies:
                assert reply.get("errCode", 0) == 0 and reply.get("ActionStatus", "OK") == "OK"

    stored = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "import json; from openim_sync.models import ImUser; "
            "print(json.dumps(list(ImUser.objects.values_list('user_id', flat=True))))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    users = set(json.loads(stored.stdout.strip().splitlines()[-1]))
    assert {"user123", "id1"} <= users  # the OpenIM curl and the signed Tencent curl
