"""The third-party notices (packaging/notices.py): every runtime dependency is in
them with a licence and its licence text, and an unknown licence stops the build.

The generator runs for real, as `make bundle` runs it, against the installed
packages, the lockfiles and node_modules, and dpkg."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "packaging" / "notices.py"
LOCKFILES = {
    "ui": REPO / "ui" / "package-lock.json",
    "vm2": REPO / "scriptbox" / "runners" / "vm2" / "package-lock.json",
}


def run_generator(out: Path, *bundled: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATOR), str(out), *bundled], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture(scope="module")
def notices(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("notices")
    result = run_generator(out)
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "third-party-licenses.json").read_text())


def component(data: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    wanted = (kind, canonicalize_name(name))
    found = [c for c in data["components"] if (c["kind"], canonicalize_name(c["name"])) == wanted]
    assert len(found) == 1, f"{kind} {name} is not in the notices once: {found}"
    return found[0]


def assert_documented(out: Path, entry: dict[str, Any]) -> None:
    """A licence, and licence files that exist and say something."""
    assert entry["licence"] not in ("", "UNKNOWN"), entry
    assert entry["files"], entry
    sizes = {name: (out / name).stat().st_size for name in entry["files"]}
    # A licence text says something; an Apache NOTICE beside it may be one line (requests: 38 bytes).
    assert all(sizes.values()) and max(sizes.values()) > 100, sizes


def pinned(path: Path) -> list[Requirement]:
    lines = (line.split(" #", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("requirements", ["requirements.txt", "requirements-desktop.txt"])
def test_every_pinned_python_requirement_is_in_the_notices_with_its_licence(
    notices: tuple[Path, dict[str, Any]], requirements: str
) -> None:
    out, data = notices
    requirements_found = pinned(REPO / requirements)
    assert len(requirements_found) >= 7
    for requirement in requirements_found:
        entry = component(data, "python", requirement.name)
        assert requirement.specifier.contains(entry["version"]), (requirement, entry["version"])
        assert_documented(out, entry)
        # Every licence is a valid SPDX expression (the generator's fixes included).
        assert str(canonicalize_license_expression(entry["licence"])) == entry["licence"]


def test_the_dependencies_of_the_requirements_are_in_the_notices_too(notices: tuple[Path, dict[str, Any]]) -> None:
    out, data = notices
    names = {canonicalize_name(c["name"]) for c in data["components"] if c["kind"] == "python"}
    todo = [r.name for f in ("requirements.txt", "requirements-desktop.txt") for r in pinned(REPO / f)]
    checked: set[str] = set()
    while todo:  # unconditional dependencies only: what any install of them pulls in
        name = canonicalize_name(todo.pop())
        if name in checked:
            continue
        checked.add(name)
        assert name in names, f"{name} (a dependency) is not in the notices"
        todo += [Requirement(r).name for r in metadata.requires(name) or [] if Requirement(r).marker is None]
    assert {"python-dateutil", "shapely", "pydantic-core", "pyqt6-sip"} <= checked
    for entry in data["components"]:
        assert_documented(out, entry)


@pytest.mark.parametrize("which", sorted(LOCKFILES))
def test_every_locked_npm_package_ships_with_its_licence_or_is_a_declared_build_tool(
    notices: tuple[Path, dict[str, Any]], which: str
) -> None:
    out, data = notices
    locked = {key: value for key, value in json.loads(LOCKFILES[which].read_text())["packages"].items() if key}
    assert locked
    not_shipped = {(n["name"], n["version"]) for n in data["notShipped"]}
    for key, value in locked.items():
        name = key.rsplit("node_modules/", 1)[1]
        if (name, value["version"]) in not_shipped:
            # Only the UI's compiler stays out; everything the harness locks is copied into the bundle.
            assert which == "ui" and (name == "esbuild" or name.startswith("@esbuild/")), name
            continue
        entry = component(data, "npm", name)
        assert (entry["version"], entry["licence"]) == (value["version"], value["license"])
        assert_documented(out, entry)
    shipped = {c["name"] for c in data["components"] if c["kind"] == "npm"}
    assert {"vm2", "@codemirror/view"} <= shipped


def test_gpl_components_are_flagged_and_point_to_their_source(notices: tuple[Path, dict[str, Any]]) -> None:
    out, data = notices
    copyleft = {c["name"]: c for c in data["components"] if c["copyleft"]}
    # The licences come from the installed metadata, not from this test.
    for name in ("SecantusDB", "PyQt6", "PyQt6-WebEngine", "PyQt6-Qt6", "PyQt6-WebEngine-Qt6"):
        assert re.search(r"\bL?GPL-", copyleft[name]["licence"]), copyleft[name]
        assert copyleft[name]["source"].startswith("https://"), copyleft[name]
    assert "GPL-2.0-only" in copyleft["SecantusDB"]["licence"]
    assert "secantusdb" in copyleft["SecantusDB"]["source"].lower()
    assert "download.qt.io/archive/qt/" in copyleft["PyQt6-Qt6"]["source"]
    # LGPL-3.0 is a supplement to the GPL-3.0: the Qt libraries carry both texts.
    qt_texts = "\n".join((out / name).read_text() for name in copyleft["PyQt6-WebEngine-Qt6"]["files"])
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in qt_texts and "GNU GENERAL PUBLIC LICENSE" in qt_texts
    assert "Chromium" in qt_texts
    text = (out / "THIRD-PARTY-NOTICES.md").read_text()
    for entry in copyleft.values():
        assert f"- {entry['name']} {entry['version']} ({entry['licence']}): {entry['source']}" in text
    assert "| npm | vm2 |" in text


def fake_site(tmp_path: Path, name: str, metadata_lines: str) -> Path:
    """A real installed distribution (dist-info + RECORD) in a directory of its own."""
    site = tmp_path / "site"
    package = site / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{metadata_lines}")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n{name}-1.0.dist-info/METADATA,,\n")
    return site


def test_a_bundled_package_with_an_unknown_licence_stops_the_generator(tmp_path: Path) -> None:
    site = fake_site(tmp_path, "mystery", "License: see the website\n")
    out = tmp_path / "out"
    result = run_generator(out, str(site / "mystery" / "__init__.py"), env={**os.environ, "PYTHONPATH": str(site)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mystery 1.0: licence unknown" in result.stderr
    assert not (out / "THIRD-PARTY-NOTICES.md").exists()


def test_a_bundled_file_nobody_owns_stops_the_generator(tmp_path: Path) -> None:
    orphan = tmp_path / "libmade-up.so.1"
    orphan.write_bytes(b"\x7fELF")
    result = run_generator(tmp_path / "out", str(orphan))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"bundled file {orphan}: no known owner or licence" in result.stderr


def test_a_bundled_package_with_a_licence_but_no_text_gets_the_standard_mit_text(tmp_path: Path) -> None:
    site = fake_site(tmp_path, "textless", "License: MIT\nAuthor: Ada Example\n")
    out = tmp_path / "out"
    result = run_generator(out, str(site / "textless" / "__init__.py"), env={**os.environ, "PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    entry = component(json.loads((out / "third-party-licenses.json").read_text()), "python", "textless")
    assert entry["licence"] == "MIT"
    (text,) = [(out / name).read_text() for name in entry["files"]]
    assert text.startswith("Copyright (c) Ada Example\n") and "Permission is hereby granted" in text


def test_bundled_system_libraries_and_the_interpreter_are_attributed_through_dpkg(tmp_path: Path) -> None:
    # /usr/bin/bash on a merged-/usr system; dpkg knows it as /bin/bash.
    bash = shutil.which("bash", path="/usr/bin:/bin")
    assert bash is not None
    package = "bash"
    stdlib_file = Path(json.__file__)
    out = tmp_path / "out"
    result = run_generator(out, bash, str(stdlib_file))
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "third-party-licenses.json").read_text())
    system = component(data, "system", package)
    assert system["source"].startswith(f"https://snapshot.debian.org/package/{package}/")
    assert "GPL" in system["licence"] and "bash" in system["shipped"]
    assert "GNU GENERAL PUBLIC LICENSE" in (out / system["files"][0]).read_text().upper()
    assert f"- bash {system['version']} (" in (out / "THIRD-PARTY-NOTICES.md").read_text()
    python = component(data, "runtime", "Python")
    assert (python["version"], python["licence"]) == (sys.version.split()[0], "PSF-2.0")
    assert component(data, "python", "pyinstaller")["licence"] == "GPL-2.0-or-later WITH Bootloader-exception"
