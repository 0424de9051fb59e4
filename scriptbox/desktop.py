"""Desktop mode: a native pywebview window onto a Scriptbox server of its own.

pywebview must own the main thread and hangs in a gevent-patched process, while
the server needs gevent. So this module never imports gevent (nor anything that
does): it starts `app.py serve` as a child process on a free loopback port, signs
the window in with a one-time token handed over on the child's stdin, and stops
the child when the window closes.

The token and the admin password never appear in a URL, a command line, a log or
the window's history: the token travels through a pipe and a same-origin POST
whose answer is an HttpOnly session cookie, and the login page is replaced in the
history by the admin page.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

from .childproc import die_with_parent, on_free_loopback_port, port_is_taken, terminate_with_grace
from .vocabulary import LISTENING_PREFIX

if TYPE_CHECKING:
    import webview

    from .config import Settings

log = logging.getLogger(__name__)

LOGIN_PATH = "/desktop-login"
ADMIN_PATH = "/admin/scripts"


WindowCallback = Callable[["webview.Window"], None]


class DesktopError(RuntimeError):
    """The desktop window or its server could not be started."""


class ServerExitedEarly(DesktopError):
    """The server exited before it printed its URL."""


@dataclass(frozen=True)
class DesktopOptions:
    """How the window looks and how long the launcher waits; the server's own settings
    come from Settings and the environment it inherits."""

    title: str = "Scriptbox"
    width: int = 1280
    height: int = 860
    min_size: tuple[int, int] = (720, 480)
    gui: str | None = None  # pywebview backend; None means "qt" on Linux, native elsewhere
    startup_timeout: float = 90.0  # the first start creates the embedded database
    stop_grace: float = 20.0  # SIGTERM -> SIGKILL; the server stops its database meanwhile
    bind_attempts: int = 3
    server_command: tuple[str, ...] | None = None  # default: default_server_command()


def default_server_command() -> list[str]:
    """argv prefix that runs `serve` with this very installation.

    In a PyInstaller bundle sys.executable is the bundle's program, which takes the
    subcommand directly.
    """
    if getattr(sys, "frozen", False):
        return [sys.executable, "serve"]
    app_py = Path(__file__).resolve().parent.parent / "app.py"
    return [sys.executable, str(app_py), "serve"]


def icon_path() -> Path | None:
    """The window icon, from the source tree or from inside the bundle."""
    root = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent))
    candidate = root / "packaging" / "icons" / "scriptbox-256.png"
    return candidate if candidate.is_file() else None


class ServerProcess:
    """A `serve` child on a loopback port, waiting for one desktop sign-in."""

    def __init__(self, proc: subprocess.Popen[str], base_url: str, token: str) -> None:
        self.proc = proc
        self.base_url = base_url
        self._token: str | None = token
        self._token_lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return self.base_url + path

    def take_token(self) -> str | None:
        """The one-time token the first time, None afterwards (the server consumed it)."""
        with self._token_lock:
            token, self._token = self._token, None
            return token

    @classmethod
    def start(
        cls,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout: float,
        attempts: int,
        output: IO[str] | None,
    ) -> ServerProcess:
        """Start the server and wait for its "listening" line.

        Retries on a fresh port when the chosen one was taken in the meantime.
        Raises DesktopError when the server exits early or is not ready in time.
        """
        def start_on(port: int) -> ServerProcess:
            token = secrets.token_hex(32)
            # preexec_fn with threads around: it only calls prctl/getppid/kill, and the
            # GUI (the thread-heavy part) starts after the server is up.
            proc = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(port), "--desktop-login-stdin"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=dict(env),
                text=True,
                bufsize=1,
                # Own session: a Ctrl-C in the terminal reaches the launcher alone,
                # which then closes the window and stops the server in order.
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509
            )
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(token + "\n")
                proc.stdin.close()
            except BrokenPipeError:
                pass  # it already exited; reported below
            ready: queue.Queue[str | None] = queue.Queue()
            threading.Thread(
                target=_forward_output,
                args=(proc.stdout, output, ready),
                name="scriptbox-server-output",
                daemon=True,
            ).start()
            try:
                url = ready.get(timeout=timeout)
            except queue.Empty:
                _stop(proc, grace=5.0)
                raise DesktopError(f"the Scriptbox server was not ready within {timeout:.0f} s") from None
            if url is not None:
                parts = urlsplit(url)
                return cls(proc, f"{parts.scheme}://{parts.netloc}", token)
            raise ServerExitedEarly(f"the Scriptbox server exited during start-up (status {proc.wait()})")

        def port_was_taken(port: int, error: Exception) -> bool:
            if isinstance(error, ServerExitedEarly) and port_is_taken(port):
                log.info("port %d was taken before the server could bind it; retrying", port)
                return True
            return False

        return on_free_loopback_port(start_on, attempts, port_was_taken)

    def stop(self, grace: float) -> int:
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit status."""
        self.stopping.set()
        return _stop(self.proc, grace)


def _stop(proc: subprocess.Popen[str], grace: float) -> int:
    def warn() -> None:
        log.warning("the Scriptbox server did not stop within %.0f s; killing it", grace)

    return int(terminate_with_grace(proc, grace, on_kill=warn))


def _forward_output(stream: IO[str], output: IO[str] | None, ready: queue.Queue[str | None]) -> None:
    """Copy the server's stdout to ours (it prints the generated admin password there on
    the first start) and report its URL once; None means it closed stdout unready.

    Keeps draining the pipe even when our own stdout is gone (no console, closed
    terminal): a full pipe would block the server.
    """
    announced = False
    for line in stream:
        if output is not None:
            try:
                output.write(line)
                output.flush()
            except (OSError, ValueError):
                output = None
        if not announced and line.startswith(LISTENING_PREFIX):
            announced = True
            ready.put(line[len(LISTENING_PREFIX) :].strip())
    if not announced:
        ready.put(None)


def _sign_in_script(token: str) -> str:
    """Page script: trade the token for the session cookie, then go to the admin page.

    replace(), not assign: the login page must not stay in the window's history. The
    admin page is opened whatever the answer: without the cookie it asks for the
    admin password, which is the right fallback.
    """
    request = json.dumps({"token": token})
    return (
        f"fetch({json.dumps(LOGIN_PATH)}, {{method: 'POST', credentials: 'same-origin',"
        f" headers: {{'Content-Type': 'application/json'}}, body: {json.dumps(request)}}})"
        ".catch(function () {})"
        f".then(function () {{ location.replace({json.dumps(ADMIN_PATH)}); }});"
    )


class _Session:
    """Drives one window: signs it in, watches the server, calls the ready hook."""

    def __init__(
        self,
        server: ServerProcess,
        window: webview.Window,
        on_window_ready: WindowCallback | None,
        timeout: float,
    ) -> None:
        self.server = server
        self.window = window
        self.on_window_ready = on_window_ready
        self.timeout = timeout
        self.admin_loaded = threading.Event()
        self.server_died = threading.Event()
        self.hook_failed = threading.Event()

    def on_loaded(self) -> None:
        """Runs in a pywebview thread after every page load."""
        path = urlsplit(self.window.get_current_url() or "").path
        if path == LOGIN_PATH:
            self._sign_in()
        elif path.startswith("/admin"):
            self.admin_loaded.set()

    def _sign_in(self) -> None:
        token = self.server.take_token()
        if token is None:
            # A reload of the login page after the token was used: the cookie is set.
            self.window.run_js(f"location.replace({json.dumps(ADMIN_PATH)});")
            return
        # run_js, not evaluate_js: pywebview wraps the latter in eval(), which the
        # server's Content-Security-Policy (script-src 'self') rightly forbids.
        self.window.run_js(_sign_in_script(token))

    def drive(self) -> None:
        """Runs in the thread pywebview starts once the GUI loop is up."""
        threading.Thread(target=self._watch_server, name="scriptbox-server-watch", daemon=True).start()
        if self.on_window_ready is None:
            return
        if not self.admin_loaded.wait(self.timeout):
            log.warning("the admin page did not load within %.0f s", self.timeout)
        if self.server_died.is_set():
            return
        try:
            self.on_window_ready(self.window)
        except Exception:
            # A failing hook must not leave a window nobody will close.
            log.exception("on_window_ready failed; closing the window")
            self.hook_failed.set()
            self.window.destroy()

    def _watch_server(self) -> None:
        code = self.server.proc.wait()
        if self.server.stopping.is_set():
            return
        log.error("the Scriptbox server exited unexpectedly (status %s); closing the window", code)
        self.server_died.set()
        if self.window.events.shown.wait(self.timeout):
            self.window.destroy()


def _close_soon(window: webview.Window) -> None:
    # Not from the signal handler itself: it interrupts the GUI thread mid-event.
    threading.Thread(target=window.destroy, name="scriptbox-close", daemon=True).start()


def _prepare_qt() -> None:
    """Process-wide Qt settings; they must be in place before pywebview starts Qt."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses to start its sandbox as root; the window only shows our own
        # loopback server. Set for this process only, not for the server's scripts.
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    # WM_CLASS "scriptbox" whatever the program is called (app.py, the bundle), so
    # desktops match the window to scriptbox.desktop (StartupWMClass) and its icon.
    os.environ.setdefault("RESOURCE_NAME", "scriptbox")
    from qtpy.QtCore import QCoreApplication

    QCoreApplication.setApplicationName("scriptbox")


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise DesktopError(
            "no graphical display (DISPLAY/WAYLAND_DISPLAY unset): use `serve` and a browser,"
            " or run under xvfb-run"
        )


def server_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The child server's environment: ours, plus what must not go on its command line."""
    env = dict(environ)
    env["PYTHONUNBUFFERED"] = "1"  # the "listening" line must not wait in a buffer
    if settings.mongodb_uri:
        # A URI may hold a password, and a command line is readable by every local user.
        env["SCRIPTBOX_MONGODB_URI"] = settings.mongodb_uri
    return env


def run_desktop(
    settings: Settings,
    on_window_ready: WindowCallback | None = None,
    options: DesktopOptions = DesktopOptions(),
) -> int:
    """Serve Scriptbox on a free loopback port and show it in a native window.

    The server uses `settings.data_dir` (and `settings.mongodb_uri`, else the embedded
    database); `settings.host` and `settings.port` are ignored: the window always
    gets its own loopback port. Blocks in the GUI loop (call it from the main thread)
    until the window is closed or SIGTERM arrives, then stops the server and its
    database. `on_window_ready`, if given, is called from a worker thread once the
    signed-in admin page has loaded (tests use it to inspect the page and close the
    window).

    Returns 0 after a normal close, 1 when the server could not start or died first,
    or `on_window_ready` raised (the reason is printed on stderr).
    """
    try:
        return _run(settings, on_window_ready, options)
    except DesktopError as exc:
        print(f"scriptbox: {exc}", file=sys.stderr)
        return 1


def _run(settings: Settings, on_window_ready: WindowCallback | None, options: DesktopOptions) -> int:
    _check_display()
    import webview  # here, not at the top: keeps Qt out of `serve` and of import time

    server_env = server_environment(settings, os.environ)
    command = [*(options.server_command or default_server_command()), "--data-dir", str(settings.data_dir)]
    gui = options.gui or ("qt" if sys.platform.startswith("linux") else None)
    if gui == "qt":
        _prepare_qt()

    server = ServerProcess.start(
        command,
        env=server_env,
        timeout=options.startup_timeout,
        attempts=options.bind_attempts,
        output=sys.stdout,
    )
    session: _Session | None = None
    try:
        window = webview.create_window(
            options.title,
            url=server.url(LOGIN_PATH),
            width=options.width,
            height=options.height,
            min_size=options.min_size,
        )
        if window is None:
            raise DesktopError("pywebview did not create a window")
        session = _Session(server, window, on_window_ready, options.startup_timeout)
        window.events.loaded += session.on_loaded
        icon = icon_path()
        # SIGTERM (logout, `kill`) closes the window like the user would, so the server
        # below is stopped and awaited. pywebview's Qt loop already turns SIGINT into a
        # quit and wakes Python twice a second, which lets this handler run.
        previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: _close_soon(window))
        try:
            webview.start(session.drive, gui=gui, icon=str(icon) if icon else None)  # type: ignore[arg-type]
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        code = server.stop(options.stop_grace)
    if session is None or session.server_died.is_set() or session.hook_failed.is_set():
        return 1
    log.debug("Scriptbox server stopped with status %s", code)
    return 0
