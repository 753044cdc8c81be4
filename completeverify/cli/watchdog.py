"""The hard stop of one ``verify`` process: a contract, not a best effort.

* armed before any heavy import (this module uses the standard library only);
* the deadline counts from the process start, not from when the watchdog was armed;
* when it fires, every descendant process (CBC, any worker) is killed with its
  process group, the solvers' private temporary folders are removed, ``timeout``
  is written (result file and stdout) and the process exits with code 0;
* any positive timeout is accepted, ``inf`` meaning no hard stop; NaN and
  non-positive values are refused by the argument parser before it is armed;
* exactly one answer is written: the verdict and the watchdog claim it under one lock
  (``Watchdog.claim`` / ``fire``), and ``leave`` ends the process once the verdict's answer
  is out, without the interpreter's teardown.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

HARD_STOP_GRACE = 0.5  # seconds past the deadline before the watchdog ends the process (the
# contract is 2 s; teardown of solver processes takes up to ~1.3 s on a loaded 2-core machine)
_IMPORTED_AT = time.monotonic()
_CHILDREN_MODULE = "completeverify.solvers.children"


def process_age() -> float:
    """Seconds since this process started (from /proc; since this import elsewhere)."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        with open("/proc/uptime", "rb") as handle:
            uptime = float(handle.read().split()[0])
        age = uptime - started
        if 0.0 <= age < 1e7:
            return age
    except (OSError, ValueError, IndexError):
        pass
    return time.monotonic() - _IMPORTED_AT


def _descendants() -> list[int]:
    """Process ids of every live descendant of this process (Linux /proc; else none)."""
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    parent_of: dict[int, int] = {}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                parent_of[int(entry)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: list[int] = []
    frontier = {os.getpid()}
    while frontier:
        children = {pid for pid, ppid in parent_of.items() if ppid in frontier}
        children -= set(found) | {os.getpid()}
        found.extend(sorted(children))
        frontier = children
    return found


def end_children() -> None:
    """Kill every descendant process (its whole group when it leads one) and remove the
    solvers' temporary folders; safe to call from any thread, at any time."""
    own_group = os.getpgid(0)
    for pid in _descendants():
        try:
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue
    children = sys.modules.get(_CHILDREN_MODULE)
    if children is not None:
        children.remove_all()


class Watchdog:
    """A daemon timer that ends the process ``grace`` seconds after the deadline."""

    def __init__(
        self,
        timeout: float,
        on_fire: Callable[[], None],
        grace: float = HARD_STOP_GRACE,
        from_process_start: bool = True,
    ) -> None:
        """Deadline ``timeout`` seconds after the process start (or after now when
        ``from_process_start`` is False); ``on_fire`` writes the answer."""
        self.timeout = timeout
        self.on_fire = on_fire
        self.grace = grace
        self.start = time.monotonic() - (process_age() if from_process_start else 0.0)
        self.timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._owner: str | None = None  # "verdict" or "watchdog": who writes the answer

    def remaining(self) -> float:
        """Seconds left until the deadline (inf when there is none; may be negative)."""
        if not math.isfinite(self.timeout):
            return math.inf
        return self.timeout - (time.monotonic() - self.start)

    def arm(self) -> Watchdog:
        """Start the timer (nothing to start for an infinite timeout)."""
        if math.isfinite(self.timeout):
            self.timer = threading.Timer(max(0.0, self.remaining() + self.grace), self.fire)
            self.timer.daemon = True
            self.timer.start()
        return self

    def cancel(self) -> None:
        """Disarm (the verdict is in)."""
        if self.timer is not None:
            self.timer.cancel()

    def claim(self) -> bool:
        """Take the answer for the verdict and disarm; False when the watchdog has already
        begun to answer (it then ends the process: the caller must write nothing)."""
        with self._lock:
            if self._owner is None:
                self._owner = "verdict"
        if self._owner != "verdict":
            return False
        self.cancel()
        return True

    def fire(self) -> None:
        """End children, write the answer, exit 0 without running anything else (nothing,
        when the verdict has claimed the answer first)."""
        with self._lock:
            if self._owner is None:
                self._owner = "watchdog"
        if self._owner != "watchdog":
            return
        try:
            end_children()
            self.on_fire()
        finally:
            os._exit(0)


def leave(code: int) -> NoReturn:
    """End this process right after its answer is written: kill what is left of its
    descendants and their files, flush the standard streams, exit with ``code``.

    The interpreter's own exit frees every object and module one by one: after a long search
    that took 1-2 s here, past the hard stop's grace.  Nothing of ours needs it (no atexit
    handlers; log handlers write through)."""
    try:
        end_children()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    finally:
        os._exit(code)


def timeout_answer(seconds: float, result_file: str | None, as_json: bool) -> Callable[[], None]:
    """The watchdog's answer: ``timeout`` in the result file and on stdout."""

    def write() -> None:
        """Write the answer (errors writing the result file are ignored)."""
        if result_file:
            tmp = f"{result_file}.{os.getpid()}.tmp"
            try:
                with open(tmp, "w") as handle:
                    handle.write("timeout\n")
                os.replace(tmp, result_file)
            except OSError:
                pass
        line = json.dumps({"status": "timeout", "seconds": seconds}) if as_json else "timeout"
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass

    return write


def on_terminate(signum: int, frame: object) -> None:
    """SIGTERM: end the solver children and their files too, then exit 128 + signum."""
    try:
        end_children()
    finally:
        os._exit(128 + signum)
