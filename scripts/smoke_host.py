"""Follow the README's "Add it to your project" section in a fresh ``django-admin startproject``
host, word for word, then use the host the way its developers would.

    <venv>/bin/python scripts/smoke_host.py README.md DIST_DIR HOST_DIR

Run by scripts/smoke-wheel with the fresh venv's Python (nothing from this checkout is importable:
the app comes from the installed wheel). Steps:

1. the section's ``pip install`` line: its wheel form (``pip install "dist/<wheel>[extras]"``),
   run as written from DIST_DIR's parent, so the README names the wheel that was built;
2. each Python block appended, as written, to the file the sentence before it names
   (``settings.py``, ``urls.py``);
3. each ``python manage.py ...`` line of the section run as written (migrate, check); ``check``
   must report nothing about openim_sync;
4. a superuser; the host under runserver; an OpenIM callback (with the README's secret) and a
   signed Tencent callback (with its SDKAppID and token) posted over HTTP;
5. both read back through admin (logged in through the login form) and the read API
   (``/openim/api/users/``, by natural id, and the schema).
"""

import hashlib
import http.cookiejar
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

SECTION = "## Add it to your project"


def fail(message):
    sys.exit(f"smoke_host: {message}")


def section_blocks(readme):
    """(preceding prose, language, code) for each fenced block of the section."""
    text = readme.read_text()
    start = text.find(SECTION + "\n")
    if start < 0:
        fail(f"README has no {SECTION!r} section")
    end = text.find("\n## ", start + len(SECTION))
    body = text[start : end if end > 0 else len(text)]
    body = body.split("\n### ")[0]  # the subsections are about the IM servers' consoles
    blocks = []
    for match in re.finditer(r"(?ms)^```(\w*)\n(.*?)^```$", body):
        prose = body[: match.start()].rsplit("```", 1)[-1]
        blocks.append((prose, match[1], match[2]))
    return blocks


def shell_lines(code):
    for line in code.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def run(command, cwd, **kwargs):
    print(f"smoke_host: $ {command if isinstance(command, str) else shlex.join(command)}")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, **kwargs)
    sys.stdout.write(result.stdout[-4000:])
    sys.stderr.write(result.stderr[-4000:])
    if result.returncode:
        fail(f"exit status {result.returncode}")
    return result


def install(blocks, dist_dir):
    """The section's pip line; its ``or:`` alternative is the wheel form, run as written."""
    for _, language, code in blocks:
        if language != "sh":
            continue
        for line in code.splitlines():
            if line.strip().startswith("pip install"):
                found = re.search(r'or: (pip install "dist/[^"]+\.whl\[[\w,-]+\]")', line)
                if not found:
                    fail(f"the README's pip line names no wheel form (or: pip install ...): {line}")
                command = found[1]
                wheel = re.search(r"dist/([^\"\[]+\.whl)", command)[1]
                if not (dist_dir / wheel).is_file():
                    built = ", ".join(p.name for p in dist_dir.glob("*.whl"))
                    fail(f"the README installs dist/{wheel}, but the build made {built}")
                pip = [sys.executable, "-m", *shlex.split(command)]
                run(pip, cwd=dist_dir.parent)
                return
    fail("the section has no pip install line")


def apply_python_blocks(blocks, project_dir):
    applied = []
    for prose, language, code in blocks:
        if language != "python":
            continue
        names = re.findall(r"`(\w+\.py)`", prose)
        if not names:
            fail(f"no file named before this block:\n{code}")
        target = project_dir / names[-1]
        if not target.is_file():
            fail(f"the README names {names[-1]}, which startproject did not create")
        with target.open("a") as file:
            file.write("\n\n# --- added from the README's 'Add it to your project' ---\n" + code)
        applied.append(names[-1])
    if sorted(applied) != ["settings.py", "urls.py"]:
        fail(f"expected a settings.py and a urls.py block, applied {applied}")


def manage_commands(blocks, host_dir):
    commands = []
    for _, language, code in blocks:
        if language == "sh":
            for line in shell_lines(code):
                if line.startswith("python manage.py"):
                    commands.append(shlex.split(line, comments=True))
    if [c[2] for c in commands] != ["migrate", "check"]:
        fail(f"expected the section to run migrate and check, found {commands}")
    for command in commands:
        result = run([sys.executable, *command[1:]], cwd=host_dir)
        if command[2] == "check":
            output = result.stdout + result.stderr
            if "openim_sync." in output or "no issues" not in output:
                fail(f"check reported something in a host set up as the README says:\n{output}")


def host_settings(host_dir):
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.OPENIM_SYNC))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "host.settings"}
    result = run([sys.executable, "-c", code], cwd=host_dir, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Browser:
    def __init__(self, base):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def request(self, path, data=None, headers=None):
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def cookie(self, name):
        return next(c.value for c in self.cookies if c.name == name)


def expect(condition, message):
    if not condition:
        fail(message)
    print(f"smoke_host: ok: {message}")


def round_trip(host_dir, config):
    manage = [sys.executable, "manage.py"]
    env = {**os.environ, "DJANGO_SUPERUSER_PASSWORD": "smoke-password"}
    run([*manage, "createsuperuser", "--no-input", "--username", "smoke", "--email", "smoke@example.com"],
        cwd=host_dir, env=env)  # fmt: skip
    port = free_port()
    log = (host_dir / "runserver.log").open("w")
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=host_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None:
                fail("runserver exited:\n" + (host_dir / "runserver.log").read_text())
            time.sleep(0.1)
        exercise(Browser(f"http://127.0.0.1:{port}"), config)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def exercise(browser, config):
    secret = config["OPENIM_SECRETS"][0]
    command = "callbackAfterUpdateUserInfoCommand"
    body = {"callbackCommand": command, "userID": "smoke-user", "nickName": "Smoke Test"}
    status, reply = browser.request(
        f"/openim/callback/{secret}/{command}",
        json.dumps(body).encode(),
        {"Content-Type": "application/json; charset=utf-8", "operationID": "smoke-1"},
    )
    expect(status == 200 and json.loads(reply)["errCode"] == 0, f"OpenIM callback: {reply}")

    status, reply = browser.request(f"/openim/callback/not-the-secret/{command}", b"{}")
    expect(status == 401, f"a wrong secret is refused ({status})")

    now = int(time.time())
    token = config["TENCENT_TOKENS"][0]
    query = urllib.parse.urlencode(
        {
            "SdkAppid": config["TENCENT_SDKAPPID"],
            "CallbackCommand": "Profile.CallbackPortraitSet",
            "contenttype": "json",
            "RequestTime": now,
            "Sign": hashlib.sha256(f"{token}{now}".encode()).hexdigest(),
        }
    )
    tencent = {
        "CallbackCommand": "Profile.CallbackPortraitSet",
        "From_Account": "smoke-tencent",
        "EventTime": now * 1000,
        "ProfileItem": [{"Tag": "Tag_Profile_IM_Nick", "Value": "Tencent Smoke"}],
    }
    status, reply = browser.request(
        f"/openim/tencent?{query}",
        json.dumps(tencent).encode(),
        {"Content-Type": "application/json"},
    )
    expect(status == 200 and json.loads(reply)["ActionStatus"] == "OK", f"Tencent: {reply}")

    status, _ = browser.request("/openim/api/users/?format=json")
    expect(status in (401, 403), f"the read API refuses anonymous users ({status})")

    browser.request("/admin/login/")
    form = urllib.parse.urlencode(
        {
            "username": "smoke",
            "password": "smoke-password",
            "csrfmiddlewaretoken": browser.cookie("csrftoken"),
            "next": "/admin/",
        }
    ).encode()
    status, page = browser.request(
        "/admin/login/?next=/admin/", form, {"Referer": browser.base + "/admin/login/"}
    )
    expect(status == 200 and "Log out" in page, "logged in to admin through the login form")

    status, page = browser.request("/admin/openim_sync/imuser/")
    expect(status == 200 and "smoke-user" in page and "smoke-tencent" in page, "admin lists both")
    status, page = browser.request("/admin/openim_sync/callbackevent/")
    expect(status == 200 and command in page, "admin lists the stored deliveries")

    status, reply = browser.request("/openim/api/users/?format=json")
    users = {user["user_id"]: user for user in json.loads(reply)["results"]}
    expect(status == 200 and {"smoke-user", "smoke-tencent"} <= set(users), "API lists both")
    expect(users["smoke-user"]["nickname"] == "Smoke Test", "API has the nickname")
    status, reply = browser.request("/openim/api/users/smoke-tencent/?format=json")
    expect(status == 200 and json.loads(reply)["nickname"] == "Tencent Smoke", "API by natural id")
    status, reply = browser.request("/openim/api/schema/?format=json")
    schema = json.loads(reply)
    expect(status == 200 and schema["openapi"].startswith("3.1"), "schema served (OpenAPI 3.1)")
    expect("/users/" in schema["paths"], "the schema describes the users endpoint")
    expect(any(name.endswith(command) for name in schema.get("webhooks", {})), "and callbacks")


def main(readme, dist_dir, host_dir):
    readme, dist_dir, host_dir = Path(readme), Path(dist_dir).resolve(), Path(host_dir).resolve()
    blocks = section_blocks(readme)
    install(blocks, dist_dir)
    host_dir.mkdir(parents=True, exist_ok=True)
    django_admin = Path(sys.executable).parent / "django-admin"
    run([str(django_admin), "startproject", "host", str(host_dir)], cwd=host_dir.parent)
    apply_python_blocks(blocks, host_dir / "host")
    manage_commands(blocks, host_dir)
    round_trip(host_dir, host_settings(host_dir))
    print("smoke_host: the README's host works")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
