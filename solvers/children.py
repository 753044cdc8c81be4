"""Solver child processes and their temporary files: one registry, so nothing outlives a run.

Standard library only.  A solve that runs an external program (CBC through PuLP) does it
inside ``private_tmpdir()``: the program's files go to a fresh folder, and when the block
ends (normally, by an exception or an interrupt) any child process still using that folder
is killed and the folder removed.  The command line's watchdog calls ``remove_all()`` when
it ends the process (it finds this module in sys.modules; it never imports it).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_folders: set[str] = set()


def _children_using(folder: str) -> list[int]:
    """Ids of this process's direct children whose command line mentions ``folder``."""
    me = str(os.getpid()).encode()
    needle = folder.encode()
    found = []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[1].split()[1] != me:
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if needle in handle.read():
                    found.append(int(entry))
        except (OSError, IndexError):
            continue
    return found


def end_processes_using(folder: str) -> None:
    """Kill (SIGKILL) every child process whose command line names ``folder``."""
    for pid in _children_using(folder):
        try:
            group = os.getpgid(pid)
            if group != os.getpgid(0):
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, os.WNOHANG)
        except (OSError, ChildProcessError):
            continue


@contextmanager
def private_tmpdir(prefix: str = "completeverify-") -> Iterator[str]:
    """A fresh temporary folder for one external solve; cleaned up however the block ends."""
    folder = tempfile.mkdtemp(prefix=prefix)
    with _lock:
        _folders.add(folder)
    try:
        yield folder
    finally:
        end_processes_using(folder)
        shutil.rmtree(folder, ignore_errors=True)
        with _lock:
            _folders.discard(folder)


def live_folders() -> list[str]:
    """The temporary folders of solves in progress."""
    with _lock:
        return sorted(_folders)


def remove_all() -> None:
    """End every registered solve's processes and remove its folder (the watchdog's exit)."""
    for folder in live_folders():
        end_processes_using(folder)
        shutil.rmtree(folder, ignore_errors=True)
