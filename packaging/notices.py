"""Third-party notices of the desktop bundle, generated from what is installed.

``generate(out_dir)`` writes:

- ``THIRD-PARTY-NOTICES.md``: every third-party component with its version, its
  licence (an SPDX expression), where it sits in the bundle, and, for copyleft
  components, where its complete source is;
- ``third-party-licenses.json``: the same, machine-readable;
- ``licenses/<kind>/<name>-<version>/``: the licence, copyright and notice files
  of each component, verbatim.

What is read (nothing here is typed in by hand except ``METADATA_FIXES``):

- Python packages: the closure of requirements.txt and requirements-desktop.txt
  (and, for a bundle, every file PyInstaller collected), with licences and
  licence files from the installed metadata (``importlib.metadata``);
- npm packages: the lockfiles of the admin page and of the vm2 harness, with
  each package's ``license`` field and its LICENSE files from ``node_modules``;
- Qt: the PyQt6-Qt6 / PyQt6-WebEngine-Qt6 packages (LGPL-3.0, which also needs
  the GPL-3.0 text) and a pointer to Qt's and Chromium's own attributions;
- for a bundle only: the Python interpreter and the system shared libraries
  PyInstaller copied in (owner, version and copyright file from ``dpkg``).

A component whose licence or licence text cannot be found raises
``NoticeError``: ``make bundle`` stops instead of shipping an unknown licence.

Run ``python packaging/notices.py OUT_DIR`` for the notices of the source tree's
dependencies (without the bundle-only parts); the tests do that.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("requirements.txt", "requirements-desktop.txt")
UI_DIR = ROOT / "ui"
VM2_DIR = ROOT / "scriptbox" / "runners" / "vm2"
# npm packages that compile ui/src and are not part of ui/dist: their code never ships.
UI_BUILD_TOOLS = ("esbuild",)

# Packages whose metadata states a licence only as free text. Each fix names the
# exact text it replaces: if an upgrade changes that text, the package counts as
# unknown again until a person has read the new one.
METADATA_FIXES: dict[str, tuple[str, str]] = {
    "pyqt6-qt6": ("LGPL v3", "LGPL-3.0-only"),
    "pyqt6-webengine-qt6": ("LGPL v3", "LGPL-3.0-only"),
    "pywebview": ("BSD 3-Clause License", "BSD-3-Clause"),
    "python-json-logger": ("BSD-2-Clause License", "BSD-2-Clause"),
    # No License field, only the ambiguous "BSD License" classifier; its LICENSE is the 3-clause text.
    "cronsim": ("", "BSD-3-Clause"),
    # "Apache 2.0" as free text; its LICENSE is the Apache License 2.0.
    "ahocorasick-rs": ("Apache 2.0", "Apache-2.0"),
    "pyinstaller": ("GPLv2-or-later with a special exception", "GPL-2.0-or-later WITH Bootloader-exception"),
}
# Trove classifiers that name exactly one licence.
CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
}
LICENCE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS)([-_.][\w.-]*)?$", re.IGNORECASE)
COPYLEFT = re.compile(r"\b(A?GPL|LGPL|MPL|EPL|CDDL)(\b|v)")
# The standard MIT text, for packages that declare MIT but ship no licence file:
# the notice is then rebuilt from the metadata's author (and says so).
MIT_TEXT = """Copyright (c) {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction, including
without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial
portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO
EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE
USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


class NoticeError(Exception):
    """A component's licence or licence text is unknown; the message names each one."""


@dataclass
class Component:
    kind: str  # python | npm | runtime | system
    name: str
    version: str
    licence: str
    shipped: str  # where it is in the bundle
    source: str  # where its complete source is
    texts: dict[str, str] = field(default_factory=dict)  # file name -> text
    files: list[str] = field(default_factory=list)  # paths in the output, set by write()

    @property
    def copyleft(self) -> bool:
        return bool(COPYLEFT.search(self.licence))


@dataclass
class Inventory:
    components: list[Component] = field(default_factory=list)
    not_shipped: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, component: Component) -> None:
        key = (component.kind, canonicalize_name(component.name), component.version)
        if all((c.kind, canonicalize_name(c.name), c.version) != key for c in self.components):
            self.components.append(component)


# --- Python packages -------------------------------------------------------------


def spdx(text: str) -> str | None:
    try:
        return str(canonicalize_license_expression(text))
    except InvalidLicenseExpression:
        return None


def meta(dist: metadata.Distribution, key: str) -> str:
    values = dist.metadata.get_all(key)
    return str(values[0]) if values else ""


def python_licence(dist: metadata.Distribution) -> str | None:
    """The SPDX licence of an installed distribution, or None when unknown."""
    if meta(dist, "License-Expression"):
        return spdx(meta(dist, "License-Expression"))
    declared = meta(dist, "License").strip()
    fix = METADATA_FIXES.get(canonicalize_name(meta(dist, "Name")))
    if fix is not None:
        return fix[1] if declared.startswith(fix[0]) else None
    if declared and len(declared) < 40 and spdx(declared):
        return spdx(declared)
    named = {CLASSIFIERS[c] for c in dist.metadata.get_all("Classifier") or [] if c in CLASSIFIERS}
    return named.pop() if len(named) == 1 else None


def python_texts(dist: metadata.Distribution, licence: str | None) -> dict[str, str]:
    texts: dict[str, str] = {}
    for entry in dist.files or []:
        if LICENCE_FILE.match(entry.name) and entry.suffix.lower() in ("", ".txt", ".md", ".rst"):
            # Files under .dist-info/licenses/ keep their sub-path: numpy has a dozen LICENSE.txt.
            parts = entry.parts[2:] if len(entry.parts) > 2 and entry.parts[1] == "licenses" else entry.parts[-1:]
            texts["__".join(parts)] = Path(str(dist.locate_file(entry))).read_text(errors="replace")
    if not texts and licence == "MIT":
        holder = meta(dist, "Author") or meta(dist, "Author-email") or meta(dist, "Name") + " authors"
        texts["LICENSE (rebuilt: the package ships none; MIT per its metadata)"] = MIT_TEXT.format(holder=holder)
    return texts


def python_source(dist: metadata.Distribution) -> str:
    urls = dict(u.split(", ", 1) for u in dist.metadata.get_all("Project-URL") or [] if ", " in u)
    repo = next((urls[k] for k in urls if k.lower() in ("source", "repository", "source code", "code")), "")
    pypi = f"https://pypi.org/project/{meta(dist, 'Name')}/{dist.version}/#files"
    return f"{pypi} {repo}".strip()  # PyPI keeps every released file


def python_component(dist: metadata.Distribution, shipped: str, inventory: Inventory) -> None:
    name, version = meta(dist, "Name"), dist.version
    licence = python_licence(dist)
    texts = python_texts(dist, licence)
    if licence is None:
        inventory.problems.append(f"Python package {name} {version}: licence unknown")
    elif not texts:
        inventory.problems.append(f"Python package {name} {version}: no licence text")
    inventory.add(Component("python", name, version, licence or "UNKNOWN", shipped, python_source(dist), texts))


def requirement_lines(path: Path) -> Iterator[Requirement]:
    for line in path.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            yield Requirement(line)


def requirements_closure(files: Iterable[Path]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the requirement files need, dependencies and extras included."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    environment: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    todo = [req for path in files for req in requirement_lines(path)]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(req.name)  # PackageNotFoundError: not installed
        found[key[0]] = dist
        for spec in dist.requires or []:
            sub = Requirement(spec)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({**environment, "extra": e}) for e in extras):
                todo.append(sub)
    return found


# --- npm packages ----------------------------------------------------------------


def lock_packages(lockfile: Path) -> dict[str, dict[str, object]]:
    packages = json.loads(lockfile.read_text())["packages"]
    return {key: value for key, value in packages.items() if key}


def npm_name(key: str) -> str:
    return key.rsplit("node_modules/", 1)[1]


def resolve(packages: dict[str, dict[str, object]], from_key: str, dependency: str) -> str | None:
    """Node's lookup: the nearest node_modules/<dependency> up from the requiring package."""
    base = from_key
    while True:
        candidate = f"{base}/node_modules/{dependency}" if base else f"node_modules/{dependency}"
        if candidate in packages:
            return candidate
        if not base:
            return None
        base = base.rsplit("/node_modules/", 1)[0] if "/node_modules/" in base else ""


def npm_closure(packages: dict[str, dict[str, object]], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = [key for key in (resolve(packages, "", name) for name in roots) if key]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        entry = packages[key]
        for field_name in ("dependencies", "optionalDependencies", "peerDependencies"):
            for dep in dict(entry.get(field_name) or {}):  # type: ignore[call-overload]
                target = resolve(packages, key, dep)
                if target:
                    todo.append(target)
    return seen


def npm_component(base: Path, key: str, entry: dict[str, object], shipped: str, inventory: Inventory) -> None:
    name, version = npm_name(key), str(entry.get("version", ""))
    folder = base / key
    licence = spdx(str(entry.get("license") or ""))
    texts = {
        item.name: item.read_text(errors="replace")
        for item in sorted(folder.glob("*"))
        if item.is_file() and LICENCE_FILE.match(item.name)
    }
    if licence is None:
        inventory.problems.append(f"npm package {name} {version}: licence unknown")
    elif not texts:
        inventory.problems.append(f"npm package {name} {version}: no licence text in {folder} (npm ci first)")
    source = f"https://www.npmjs.com/package/{name}/v/{version}"
    inventory.add(Component("npm", name, version, licence or "UNKNOWN", shipped, source, texts))


def add_npm(inventory: Inventory) -> None:
    ui_packages = lock_packages(UI_DIR / "package-lock.json")
    ui_manifest = json.loads((UI_DIR / "package.json").read_text())
    roots = {**ui_manifest.get("dependencies", {}), **ui_manifest.get("devDependencies", {})}
    shipped = npm_closure(ui_packages, [name for name in roots if name not in UI_BUILD_TOOLS])
    for key, entry in ui_packages.items():
        if key in shipped:
            npm_component(UI_DIR, key, entry, "the admin page (compiled into ui/dist/assets/app.js)", inventory)
        else:
            inventory.not_shipped.append({
                "name": npm_name(key), "version": str(entry.get("version", "")), "from": "ui/package-lock.json",
                "reason": "build tool (" + ", ".join(UI_BUILD_TOOLS) + "): compiles ui/src, not in ui/dist",
            })
    # The harness folder ships with its whole node_modules.
    for key, entry in lock_packages(VM2_DIR / "package-lock.json").items():
        npm_component(VM2_DIR, key, entry, "the vm2 harness (scriptbox/runners/vm2/node_modules)", inventory)


# --- Qt ----------------------------------------------------------------------------


def add_qt_notices(inventory: Inventory) -> None:
    """LGPL-3.0 is GPL-3.0 plus extra permissions, so the Qt libraries need both texts;
    and Qt WebEngine contains Chromium, whose own third-party notices the wheels do not carry."""
    gpl3 = next((c for c in inventory.components if c.name == "PyQt6"), None)
    for component in inventory.components:
        if component.name not in ("PyQt6-Qt6", "PyQt6-WebEngine-Qt6"):
            continue
        qt_version = component.version
        series = ".".join(qt_version.split(".")[:2])
        component.source = (
            f"https://download.qt.io/archive/qt/{series}/{qt_version}/submodules/ "
            f"(the Qt {qt_version} release that Riverbank packaged as {component.name})"
        )
        if gpl3 is not None:
            component.texts.update({f"GPL-3.0 (from PyQt6) {k}": v for k, v in gpl3.texts.items()})
        component.texts["QT-THIRD-PARTY.txt"] = (
            f"Qt {qt_version} includes third-party code under other licences (and Qt WebEngine contains\n"
            "Chromium, which includes several hundred more). The wheels do not carry those notices; they are\n"
            f"listed in Qt's documentation (https://doc.qt.io/qt-{series.split('.')[0]}/licenses-used-in-qt.html,\n"
            "https://doc.qt.io/qt-6/qtwebengine-licensing.html) and in the qt_attribution.json and LICENSE files\n"
            f"of the Qt {qt_version} source archives at {component.source.split()[0]}\n"
        )


# --- the bundle: interpreter, system libraries, every collected file -------------


def owner_map() -> dict[str, metadata.Distribution]:
    owners: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        for entry in dist.files or []:
            owners[os.path.realpath(str(dist.locate_file(entry)))] = dist
    return owners


def dpkg_owners(paths: Iterable[str]) -> dict[str, str]:
    """Path -> Debian package (``name:arch``), trying the /usr-merged and unmerged spellings."""
    candidates: dict[str, str] = {}
    for path in paths:
        for spelling in {path, os.path.realpath(path)}:
            candidates[spelling] = path
            other = spelling[4:] if spelling.startswith("/usr/") else "/usr" + spelling
            candidates[other] = path
    if not candidates or shutil.which("dpkg") is None:
        return {}
    result = subprocess.run(["dpkg", "-S", *sorted(candidates)], capture_output=True, text=True)
    owners: dict[str, str] = {}
    for line in result.stdout.splitlines():
        packages, _, path = line.partition(": ")
        if path in candidates and "," not in packages:
            owners[candidates[path]] = packages
    return owners


def system_component(package: str, libraries: list[str], inventory: Inventory) -> None:
    fields = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}\t${source:Package}\t${source:Version}", package],
        capture_output=True, text=True, check=True,
    ).stdout.split("\t")
    name = package.split(":")[0]
    copyright_file = Path("/usr/share/doc") / name / "copyright"
    if not copyright_file.is_file():
        inventory.problems.append(f"system package {package}: no {copyright_file}")
        return
    text = copyright_file.read_text(errors="replace")
    licence = "see copyright file"
    if text.startswith("Format:"):  # machine-readable (DEP-5): the licences it names
        names = dict.fromkeys(m.strip() for m in re.findall(r"^License: *([^\n]+)", text, flags=re.MULTILINE))
        licence = " AND ".join(f"({n})" if " " in n else n for n in names) or licence
    source = f"https://snapshot.debian.org/package/{fields[1]}/{fields[2]}/ (apt-get source {fields[1]}={fields[2]})"
    shipped = "shared libraries " + ", ".join(sorted(libraries))
    inventory.add(Component("system", name, fields[0], licence, shipped, source, {"copyright": text}))


def python_licence_file() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"


def python_runtime(inventory: Inventory) -> None:
    licence_file = python_licence_file()
    version = sys.version.split()[0]
    inventory.add(Component(
        "runtime", "Python", version, "PSF-2.0", "the interpreter (libpython) and its standard library",
        f"https://www.python.org/downloads/release/python-{version.replace('.', '')}/",
        {"LICENSE.txt": licence_file.read_text(errors="replace")},
    ))


def add_bundle_files(files: Iterable[str], work_dir: Path, inventory: Inventory) -> None:
    """Attribute every file PyInstaller collected to a component; an unattributable file is a problem."""
    owners = owner_map()
    # A python.org/pyenv interpreter has its LICENSE.txt; a distribution's Python
    # (Debian's /usr) is attributed through dpkg like the other system files.
    prefixes = {os.path.realpath(p) + os.sep for p in (sys.base_prefix, sys.base_exec_prefix)}
    if not python_licence_file().is_file():
        prefixes = set()
    ours = (str(ROOT) + os.sep, os.path.realpath(work_dir) + os.sep)
    system: list[str] = []
    for path in sorted({os.path.realpath(f) for f in files}):
        if path in owners:
            python_component(owners[path], "Python package in the bundle", inventory)
        elif path.startswith(ours):
            continue  # Scriptbox's own files, ui/dist and the vm2 harness (npm: from the lockfiles)
        elif any(path.startswith(prefix) for prefix in prefixes):
            python_runtime(inventory)
        else:
            system.append(path)
    debian = dpkg_owners(system)
    by_package: dict[str, list[str]] = {}
    for path in system:
        if path in debian:
            by_package.setdefault(debian[path], []).append(Path(path).name)
        else:
            inventory.problems.append(f"bundled file {path}: no known owner or licence")
    for package, libraries in sorted(by_package.items()):
        system_component(package, libraries, inventory)


# --- output ------------------------------------------------------------------------


def safe(name: str) -> str:
    return re.sub(r"[^\w.+-]+", "_", name)


def write(inventory: Inventory, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "licenses", ignore_errors=True)
    for component in inventory.components:
        folder = Path("licenses") / component.kind / safe(f"{component.name}-{component.version}")
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        component.files = []
        for file_name, text in component.texts.items():
            (out_dir / folder / safe(file_name)).write_text(text)
            component.files.append(str(folder / safe(file_name)))
    ordered = sorted(inventory.components, key=lambda c: (c.kind, c.name.lower()))
    data = {
        "components": [{k: v for k, v in asdict(c).items() if k != "texts"} | {"copyleft": c.copyleft}
                       for c in ordered],
        "notShipped": inventory.not_shipped,
    }
    (out_dir / "third-party-licenses.json").write_text(json.dumps(data, indent=1) + "\n")
    (out_dir / "THIRD-PARTY-NOTICES.md").write_text(markdown(ordered, inventory.not_shipped))


def markdown(components: list[Component], not_shipped: list[dict[str, str]]) -> str:
    lines = [
        "# Third-party notices",
        "",
        "Generated by packaging/notices.py from the installed packages and the lockfiles; do not edit.",
        "Scriptbox itself is under the MIT licence (LICENSE). The licence, copyright and notice files",
        "of every component below are in licenses/, verbatim.",
        "",
        "| kind | component | version | licence | in the bundle |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {c.kind} | {c.name} | {c.version} | {c.licence} | {c.shipped} |" for c in components]
    lines += [
        "",
        "## Source of the copyleft components",
        "",
        "The complete corresponding source of each component under a copyleft licence, at the exact",
        "version in this bundle (see docs/desktop.md, \"Licences\", for what a redistributor must do):",
        "",
    ]
    # System libraries too: many Debian copyright files are not machine-readable, and
    # Debian keeps every source version, so each gets its pointer.
    lines += [f"- {c.name} {c.version} ({c.licence}): {c.source}"
              for c in components if c.copyleft or c.kind == "system"]
    if not_shipped:
        lines += ["", "## Locked but not shipped", ""]
        for reason in dict.fromkeys(n["reason"] for n in not_shipped):
            names = ", ".join(f"{n['name']} {n['version']}" for n in not_shipped if n["reason"] == reason)
            lines.append(f"- {reason}: {names}")
    return "\n".join(lines) + "\n"


def generate(out_dir: Path, bundled_files: Iterable[str] | None = None, work_dir: Path | None = None) -> Inventory:
    """Write the notices into out_dir. With bundled_files (a bundle's collected files), also attribute
    each of them. Raises NoticeError naming every component whose licence or text is unknown."""
    inventory = Inventory()
    for dist in requirements_closure(ROOT / name for name in REQUIREMENTS).values():
        python_component(dist, "Python package in the bundle", inventory)
    if bundled_files is not None:
        python_component(metadata.distribution("pyinstaller"), "the program's bootloader", inventory)
        add_bundle_files(bundled_files, work_dir or ROOT / "build", inventory)
    add_npm(inventory)
    add_qt_notices(inventory)
    if inventory.problems:
        raise NoticeError("unknown licences, nothing written:\n  " + "\n  ".join(inventory.problems))
    write(inventory, out_dir)
    return inventory


def main(argv: list[str]) -> int:
    """``notices.py OUT_DIR [BUNDLED_FILE ...]``: with files, attribute them as a bundle's files."""
    if not argv:
        print("usage: python packaging/notices.py OUT_DIR [BUNDLED_FILE ...]", file=sys.stderr)
        return 2
    try:
        inventory = generate(Path(argv[0]), argv[1:] or None)
    except NoticeError as error:
        print(f"notices: {error}", file=sys.stderr)
        return 1
    print(f"notices: {len(inventory.components)} components written to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
