"""Starting a run's process, in this process: both ways (posix_spawn for host
runs, fork for specs with a preexec such as vm2) give a script the same start."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import gevent
import pytest

from scriptbox import proctree
from scriptbox.engine.spawn import ChildProcess, env_with_chdir, start_process
from scriptbox.runners.base import LaunchSpec


def _nothing() -> None:
    """A preexec that does nothing: it makes start_process fork."""


WAYS = {"posix_spawn": None, "fork": _nothing}


def _spec(script: str, cwd: Path, way: str, **kwargs: object) -> LaunchSpec:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    return LaunchSpec(argv=["bash", "-c", script], env=env, cwd=str(cwd), preexec=WAYS[way], **kwargs)  # type: ignore[arg-type]


def _outputs(proc: ChildProcess) -> tuple[str, str, int]:
    """stdout, stderr and exit code, read cooperatively."""
    reads = [gevent.spawn(pipe.read) for pipe in (proc.stdout, proc.stderr) if pipe is not None]
    texts = [g.get(timeout=20).decode() for g in reads]
    code = proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return texts[0], texts[1] if len(texts) > 1 else "", code


def test_this_machine_starts_host_runs_without_fork() -> None:
    # Debian's coreutils env has -C: host runs take the posix_spawn way here (and in CI).
    assert env_with_chdir() is not None


@pytest.mark.parametrize("way", WAYS)
def test_a_script_starts_in_its_directory_and_session_with_default_signals_and_three_descriptors(
        way: str, tmp_path: Path) -> None:
    # `ls` alone: in a pipeline, bash's own ends of the pipe were listed when
    # `ls` ran before bash had closed them (fd 3, seen once in a full run);
    # `; true` keeps bash from exec'ing `ls` in its place (ls's own fd 3).
    script = "pwd; ps -o sid= -p $$; grep -E '^Sig(Ign|Blk)' /proc/self/status; ls /proc/$$/fd; true"
    proc, start = start_process(_spec(script, tmp_path, way), stdin_pipe=False)
    info = proctree.read_proc(proc.pid)
    out, err, code = _outputs(proc)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == str(tmp_path)
    assert int(lines[1]) == proc.pid  # its own session
    masks = dict(line.split(":\t") for line in lines[2:4])
    assert int(masks["SigBlk"], 16) == 0
    # Python ignores SIGPIPE; a script must not inherit that (`yes | head` must end quietly).
    assert int(masks["SigIgn"], 16) & (1 << (signal.SIGPIPE - 1)) == 0
    # Nothing of the server's (database sockets, other runs' pipes) reaches a script.
    assert sorted(f"fd {line}" for line in lines[4:]) == ["fd 0", "fd 1", "fd 2"]
    assert start is not None and (info is None or info.start == start)


@pytest.mark.parametrize("way", WAYS)
def test_stdin_merged_stderr_and_a_signal_death(way: str, tmp_path: Path) -> None:
    spec = _spec("cat; echo to-stderr >&2", tmp_path, way, stdin_data=b"fed\n", merge_stderr=True)
    proc, _ = start_process(spec, stdin_pipe=True)
    assert proc.stdin is not None and proc.stderr is None
    proc.stdin.write(b"fed\n")
    proc.stdin.close()
    out, _, code = _outputs(proc)
    assert (out, code) == ("fed\nto-stderr\n", 0)

    proc, _ = start_process(_spec("kill -KILL $$", tmp_path, way), stdin_pipe=False)
    _, _, code = _outputs(proc)
    assert code == -signal.SIGKILL
    assert proc.result.ready() and proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("way", WAYS)
def test_what_cannot_start_says_why(way: str, tmp_path: Path) -> None:
    missing = _spec("true", tmp_path, way)
    missing.argv = ["no-such-interpreter-here", "-c", "true"]
    with pytest.raises(FileNotFoundError):
        start_process(missing, stdin_pipe=False)
    missing.argv = [str(tmp_path / "no-such-program"), "-c", "true"]
    with pytest.raises(FileNotFoundError):
        start_process(missing, stdin_pipe=False)
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")
    missing.argv = [str(tmp_path / "not-executable")]
    with pytest.raises(PermissionError):
        start_process(missing, stdin_pipe=False)
    with pytest.raises(FileNotFoundError):
        start_process(_spec("true", tmp_path / "gone", way), stdin_pipe=False)
    nul = _spec("true", tmp_path, way)
    nul.env["BAD"] = "a\0b"
    with pytest.raises(ValueError):
        start_process(nul, stdin_pipe=False)
