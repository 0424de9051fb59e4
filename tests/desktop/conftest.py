"""Fixtures of the desktop and packaging tests: a private Xvfb screen, the
artifacts folder and the PyInstaller bundle (helpers live in desktop_support.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .desktop_support import REPO

ARTIFACTS = REPO / "tests" / "artifacts"
SCREEN = "1400x1000x24"


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """An Xvfb server of our own; yields its DISPLAY (":N")."""
    read_end, write_end = os.pipe()
    # -displayfd: Xvfb picks a free display number and writes it to us when ready.
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", SCREEN, "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as announced:
        number = announced.readline().strip()
    if not number:
        xvfb.kill()
        raise RuntimeError(f"Xvfb did not start (exit {xvfb.wait()})")
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(10)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The PyInstaller bundle's program, built fresh by packaging/build.sh (~45 s).

    SCRIPTBOX_TEST_BUNDLE=path/to/scriptbox reuses a bundle already built (local runs).
    """
    prebuilt = os.environ.get("SCRIPTBOX_TEST_BUNDLE")
    if prebuilt:
        return Path(prebuilt).resolve()
    env = {**os.environ, "PY": sys.executable}
    subprocess.run([str(REPO / "packaging" / "build.sh")], cwd=REPO, env=env, check=True, timeout=600)
    program = REPO / "dist" / "scriptbox" / "scriptbox"
    assert program.is_file(), program
    return program
