"""A real Scriptbox server: `python app.py serve` as a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

from scriptbox.childproc import free_loopback_port
from scriptbox.vocabulary import LISTENING_PREFIX

from ._path import REPO
from .client import ADMIN_PASSWORD, ADMIN_USER, Api

START_TIMEOUT_S = 60.0


class ScriptboxServer:
    """One real `python app.py serve` process.

    With `mongodb_uri` None it starts its own embedded database. Its output is
    kept in `output` (and copied to `log` when given).
    """

    def __init__(self, data_dir: Path, *, mongodb_uri: str | None, db_name: str | None = None,
                 env: dict[str, str] | None = None, port: int | None = None,
                 extra_args: list[str] | None = None, password: str = ADMIN_PASSWORD,
                 log: IO[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_loopback_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.mongodb_uri = mongodb_uri
        self.db_name = db_name or f"sbx_{uuid.uuid4().hex[:12]}"
        self.password = password
        home = data_dir.parent / f"{data_dir.name}-home"
        home.mkdir(parents=True, exist_ok=True)
        # A home of its own: `bash -lc` then reads no ~/.profile of this machine
        # (here it runs `pyenv rehash`, whose lock, left by a killed run, would
        # stall every later run of every test for a minute).
        self.env = {**os.environ, "SCRIPTBOX_DB_NAME": self.db_name, "SCRIPTBOX_ADMIN_PASSWORD": password,
                    "PYTHONUNBUFFERED": "1", "HOME": str(home)}
        self.env.update(env or {})
        self.extra_args = extra_args or []
        self.log = log
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()

    @property
    def argv(self) -> list[str]:
        argv = [sys.executable, str(REPO / "app.py"), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        if self.mongodb_uri:
            argv += ["--mongodb-uri", self.mongodb_uri]
        return argv + self.extra_args

    def start(self, wait: bool = True, stdin_text: str | None = None) -> ScriptboxServer:
        """Start the process; `stdin_text` is written to its stdin (else stdin is empty)."""
        self._ready.clear()
        self.output.clear()
        self.process = subprocess.Popen(self.argv, cwd=REPO, env=self.env,
                                        stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        if stdin_text is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(stdin_text)
            self.process.stdin.close()
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        if wait:
            self.wait_ready()
        return self

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.output.append(line)
            if self.log is not None:
                self.log.write(line)
            if line.startswith(LISTENING_PREFIX):
                self._ready.set()
        process.stdout.close()  # at EOF (the server exited): this thread is its only reader

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.2)  # let the drain thread collect the last lines
                raise AssertionError(f"server did not start (exit {self.process.poll()}):\n{self.text}")

    @property
    def text(self) -> str:
        return "".join(self.output)

    def api(self, **kwargs: Any) -> Api:
        kwargs.setdefault("auth", (ADMIN_USER, self.password))
        return Api(self.base_url, **kwargs)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL if it does not stop in `timeout`)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the server did not stop within {timeout:.0f} s of SIGTERM; its output ends:\n"
                                 f"{self.text[-4000:]}") from None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


class ScriptboxWorker(ScriptboxServer):
    """One real `python app.py worker` on a shared database: it serves no HTTP and
    prints no listening line, so `start` does not wait (see the executors list)."""

    def __init__(self, data_dir: Path, *, mongodb_uri: str, db_name: str, env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, mongodb_uri=mongodb_uri, db_name=db_name, env=env)

    @property
    def argv(self) -> list[str]:
        return [sys.executable, str(REPO / "app.py"), "worker", "--data-dir", str(self.data_dir),
                "--mongodb-uri", str(self.mongodb_uri)]

    def start(self, wait: bool = False, stdin_text: str | None = None) -> ScriptboxWorker:
        super().start(wait=False, stdin_text=stdin_text)
        return self
