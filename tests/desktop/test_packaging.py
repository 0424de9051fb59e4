"""packaging/: the systemd unit, the .desktop entry, and the PyInstaller bundle built
and run for real (`serve` with its embedded database, and `desktop` under Xvfb)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from packaging.utils import canonicalize_name

from scriptbox.childproc import free_loopback_port
from scriptbox.vocabulary import LISTENING_PREFIX
from support import FINISHED, eventually

from .desktop_support import REPO, finish, kill_all, wait_for_line, wait_for_line_matching, wait_until_gone

UNIT = REPO / "packaging" / "systemd" / "scriptbox.service"
SYSUSERS = REPO / "packaging" / "systemd" / "scriptbox.sysusers"
DESKTOP_ENTRY = REPO / "packaging" / "linux" / "scriptbox.desktop"
INSTALL_ENTRY = REPO / "packaging" / "linux" / "install-desktop-entry.sh"
PASSWORD = "bundle-test-password-31ab"


# --- systemd -------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("credentials", [False, True], ids=["as-shipped", "with-credentials"])
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path, credentials: bool) -> None:
    # verify checks that ExecStart's program exists; the bundle is not installed in
    # /opt here, so a copy of the unit points at a stand-in program, nothing else changed.
    program = tmp_path / "scriptbox"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    text = UNIT.read_text().replace("/opt/scriptbox/scriptbox", str(program))
    if credentials:  # the commented-out secret lines docs/deploy.md tells to enable
        text = re.sub(r"^#(LoadCredential=|Environment=SCRIPTBOX_)", r"\1", text, flags=re.MULTILINE)
        assert text.count("LoadCredential=") == 2
    unit = tmp_path / "scriptbox.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # Unknown keys and bad values are only warnings for verify: any output fails the test.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_unit_runs_hardened_as_a_dedicated_user(tmp_path: Path) -> None:
    settings = unit_settings()
    expected = {
        "User": ["scriptbox"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "PrivateTmp": ["yes"],
        "StateDirectory": ["scriptbox"],
        "Environment": ["SCRIPTBOX_DATA_DIR=/var/lib/scriptbox"],
        "KillMode": ["mixed"],  # SIGTERM to Scriptbox, which stops its database in order
    }
    for key, value in expected.items():
        assert settings.get(key) == value, key
    assert settings["ExecStart"][0].split()[1:] == ["serve"]
    report = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60,
    ).stdout
    match = re.search(r"Overall exposure level for scriptbox\.service: ([0-9.]+)", report)
    assert match is not None, report
    assert float(match.group(1)) <= 2.0, report  # systemd rates <= 2 as "OK"; default units score ~9.6


def test_sysusers_entry_creates_the_service_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        ["systemd-sysusers", "--dry-run", f"--root={tmp_path}", str(SYSUSERS)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Creating user 'scriptbox'" in result.stdout + result.stderr


# --- .desktop entry --------------------------------------------------------------


def exec_argv(value: str) -> list[str]:
    """Split a Desktop Entry Exec value into arguments, per the specification: the
    string unescaping first, then the quoting rules."""
    unescaped = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), value)
    args, current, quoted, i = [], "", False, 0
    while i < len(unescaped):
        char = unescaped[i]
        if quoted and char == "\\":
            current, i = current + unescaped[i + 1], i + 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            args.append(current)
            current = ""
        else:
            current += char
        i += 1
    return [*args, current]


def test_desktop_entry_is_valid() -> None:
    result = subprocess.run(["desktop-file-validate", str(DESKTOP_ENTRY)], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    text = DESKTOP_ENTRY.read_text()
    assert "Exec=/opt/scriptbox/scriptbox desktop" in text
    assert "StartupWMClass=scriptbox" in text  # the window's WM_CLASS (see desktop.py)


def test_desktop_entry_installer_quotes_any_path(tmp_path: Path) -> None:
    program = '/opt/odd place/$HOME"`x`\\scriptbox'
    data_home = tmp_path / "share"
    result = subprocess.run(
        [str(INSTALL_ENTRY), program], env={"XDG_DATA_HOME": str(data_home), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    entry = data_home / "applications" / "scriptbox.desktop"
    validation = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert validation.returncode == 0, validation.stdout + validation.stderr
    exec_value = next(line for line in entry.read_text().splitlines() if line.startswith("Exec="))[5:]
    assert exec_argv(exec_value) == [program, "desktop"]
    assert (data_home / "icons" / "hicolor" / "256x256" / "apps" / "scriptbox.png").is_file()
    assert (data_home / "icons" / "hicolor" / "scalable" / "apps" / "scriptbox.svg").is_file()


# --- the PyInstaller bundle ------------------------------------------------------


SYSTEM_LIBRARY_PATH = "/opt/system-libs-of-this-host"
# The first test that asks for the bundle builds it: two PyInstaller analyses (the
# app and the database program) take minutes on a busy 2-core machine.
BUILDS_THE_BUNDLE = pytest.mark.timeout(900)


def bundle_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRIPTBOX_", "PYTHON"))}
    env.update(
        SCRIPTBOX_DATA_DIR=str(data_dir),
        SCRIPTBOX_ADMIN_PASSWORD=PASSWORD,
        # A home of its own: scripts run in login shells, which must not read this
        # machine's ~/.profile (slow tool init, shared lock files).
        HOME=str(data_dir.parent),
        LD_LIBRARY_PATH=SYSTEM_LIBRARY_PATH,
        **extra,
    )
    return env


def run_to_end(session: requests.Session, base: str, script: dict[str, Any]) -> dict[str, Any]:
    created = session.post(base + "/api/admin/scripts", json=script, timeout=10)
    assert created.status_code == 201, created.text
    started = session.post(base + f"/api/admin/scripts/{created.json()['id']}/run", json={}, timeout=10)
    assert started.status_code == 202, started.text
    def finished() -> dict[str, Any] | None:
        run = session.get(base + f"/api/admin/scripts/runs/{started.json()['runId']}", timeout=10).json()
        return dict(run) if run["status"] in FINISHED else None

    return eventually(finished, 30, interval=0.1, message="the run finishes")


@BUILDS_THE_BUNDLE
def test_bundle_serve_answers_healthz_and_the_api_with_its_embedded_database(bundle: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_loopback_port()
    server = subprocess.Popen(
        [str(bundle), "serve", "--port", str(port)], env=bundle_env(data_dir), cwd=tmp_path,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_line(server, LISTENING_PREFIX, timeout=90)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(base + "/healthz", timeout=10).json() == {"status": "ok", "db": "ok"}
        # The database is the bundle's second program (apart from Qt for its licence: docs/desktop.md).
        database = psutil.Process(json.loads((data_dir / "db.pid").read_text())["pid"])
        assert Path(database.exe()) == bundle.parent / "scriptbox-db"
        assert requests.get(base + "/api/admin/scripts", timeout=10).status_code == 401
        session = requests.Session()
        session.auth = ("admin", PASSWORD)
        # Scripts get the host's libraries, not the bundle's (see packaging/rthooks).
        bash = run_to_end(session, base, {"name": "b", "codeIdentifier": "bundle-bash", "type": "bash",
                                          "script": 'echo "from-the-bundle lib=$LD_LIBRARY_PATH"'})
        assert (bash["status"], bash["outputTail"]) == ("succeeded", f"from-the-bundle lib={SYSTEM_LIBRARY_PATH}\n")
        # The vm2 harness and its node_modules travel inside the bundle.
        vm2 = run_to_end(session, base, {"name": "v", "codeIdentifier": "bundle-vm2", "type": "node",
                                         "runner": "vm2", "script": "console.log(6 * 7)"})
        assert (vm2["status"], vm2["outputTail"]) == ("succeeded", "42\n")
        # The automation client is the same program: `scriptbox run CODE --follow` with its exit code.
        client = subprocess.run([str(bundle), "run", "bundle-bash", "--follow"], capture_output=True, timeout=60,
                                env=bundle_env(data_dir, SCRIPTBOX_URL=base), stdin=subprocess.DEVNULL)
        assert (client.returncode, client.stdout) == (0, f"from-the-bundle lib={SYSTEM_LIBRARY_PATH}\n".encode()), \
            client.stderr
        page = session.get(base + "/admin/scripts", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert session.get(base + "/admin/assets/app.js", timeout=10).status_code == 200
        server.send_signal(signal.SIGTERM)
        code, output = finish(server, timeout=60)
        assert code == 0, output
    finally:
        if server.poll() is None:
            server.kill()
    left = wait_until_gone(data_dir, 30)
    kill_all(left)
    assert left == []


@BUILDS_THE_BUNDLE
def test_bundle_desktop_opens_a_signed_in_window(
    bundle: Path, display: str, tmp_path: Path, artifacts: Path
) -> None:
    data_dir = tmp_path / "data"
    launcher = subprocess.Popen(
        [str(bundle), "desktop"], env=bundle_env(data_dir, DISPLAY=display), cwd=tmp_path,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = wait_for_line(launcher, LISTENING_PREFIX, timeout=90)
        # The server's access log (on the launcher's stderr) shows the window signing in.
        lines += wait_for_line_matching(launcher, re.compile(r'"GET /admin/assets/app\.js HTTP/1\.1" 200'), 60)
        assert any(re.search(r'"POST /desktop-login HTTP/1\.1" 204', line) for line in lines), "".join(lines)
        time.sleep(1.5)  # let the page render for the screenshot
        tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True,
                              env={"DISPLAY": display}, check=True).stdout
        assert re.search(r'"Scriptbox": \("scriptbox" "scriptbox"\)\s+1280x860', tree), tree
        subprocess.run(["import", "-window", "root", str(artifacts / "desktop-bundle-window.png")],
                       env={"DISPLAY": display, "PATH": "/usr/bin:/bin"}, check=True, timeout=30)
        launcher.send_signal(signal.SIGTERM)
        code, output = finish(launcher, timeout=60)
        assert code == 0, output
    finally:
        if launcher.poll() is None:
            launcher.kill()
    left = wait_until_gone(data_dir, 30)
    kill_all(left)
    assert left == []



def archive_modules(program: Path) -> set[str]:
    """The top-level Python packages inside a bundle program's archive."""
    viewer = Path(sys.executable).parent / "pyi-archive_viewer"
    listing = subprocess.run([str(viewer), "--recursive", "--brief", str(program)],
                             capture_output=True, text=True, check=True, timeout=120).stdout
    return {line.strip().split(".")[0] for line in listing.splitlines() if line.startswith(" ")}


@BUILDS_THE_BUNDLE
def test_bundle_ships_its_licence_notices_and_keeps_the_gpl2_database_apart_from_qt(bundle: Path) -> None:
    top = bundle.parent
    assert (top / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    data = json.loads((top / "third-party-licenses.json").read_text())
    notices = (top / "THIRD-PARTY-NOTICES.md").read_text()
    for entry in data["components"]:
        assert entry["licence"] not in ("", "UNKNOWN") and entry["files"], entry
        assert all((top / name).is_file() for name in entry["files"]), entry
        assert f"| {entry['kind']} | {entry['name']} | {entry['version']} |" in notices
    names = {(c["kind"], canonicalize_name(c["name"])) for c in data["components"]}
    assert {("python", "secantusdb"), ("python", "pyqt6-webengine-qt6"), ("python", "pyinstaller"),
            ("npm", "vm2"), ("npm", "@codemirror/view"), ("runtime", "python")} <= names
    assert any(kind == "system" for kind, _ in names)  # the shared libraries PyInstaller copied in
    # Every Python package whose metadata travels in the bundle is in the notices.
    shipped = {canonicalize_name(d.name.split("-")[0]) for d in (top / "_internal").glob("*.dist-info")}
    assert shipped and shipped <= {name for kind, name in names if kind == "python"}, shipped
    # GPL-2.0-only SecantusDB and GPL-3.0-only PyQt6 are never one program.
    app, database = archive_modules(bundle), archive_modules(top / "scriptbox-db")
    assert {"scriptbox", "PyQt6", "webview"} <= app and "secantus" not in app
    assert {"secantus", "wiredtiger"} <= database and not {"PyQt6", "webview", "qtpy"} & database
