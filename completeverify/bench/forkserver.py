"""A pre-imported fork server: import completeverify and torch once, then fork one child per
instance.

``completeverify bench`` (isolation ``fork``, the default for local runs)
starts ``python -m completeverify.bench.forkserver`` once.  That process
imports torch, numpy, onnx, highspy and completeverify's modules (about 1 s,
paid once), then waits for requests on its stdin.  For each instance it forks a
child that

* calls ``os.setsid()`` first, so the child leads a new session and process
  group, exactly like ``subprocess.Popen(start_new_session=True)`` in spawn
  mode; the server reports the child's pid only after that, so the runner's
  ``killpg`` on timeout always reaches the child and everything it started;
* points fds 0/1/2 at /dev/null and two files, closes the server's own pipes and
  restores default signal handling;
* runs the same entry point the command line would (``completeverify.cli.main``
  with the argv of ``python -m completeverify verify ...``; another
  ``-m module`` or a ``script.py`` through runpy) and leaves with ``os._exit``
  and that exit code (``SystemExit`` and uncaught exceptions map to codes as
  the interpreter maps them; non-daemon threads are joined first, as at
  interpreter exit; atexit handlers are not run, since most were inherited
  from the server).

The server reaps its children and reports their exit status (negative signal
number when killed, like ``Popen.returncode``).  It never kills a child on a
timeout itself: the runner owns deadlines and signals the child's group
directly, so a wedged server cannot keep a hung instance alive.  When its stdin
reaches EOF (the runner finished, or died) the server kills every child's
group and exits.

The code is imported once per run: an edit to completeverify's sources while
a run is going reaches spawned processes but not forked ones.

Why a server of our own and not ``multiprocessing``'s forkserver with preload:
the child must be in its own session before anything else runs and the runner
must learn its pid only then; the exit status must be the real wait status
(signals included); stdout/stderr must go to files without multiprocessing's
bootstrap (which swaps stdin, runs its own finalizers and reports exceptions
its own way); and the runner must see at once when the server dies (EOF on a
pipe).  multiprocessing's forkserver gives none of these hooks directly and is
one shared, implicitly restarted server per interpreter.

Fork safety.  ``os.fork`` copies only the calling thread, so the server forks
only while it is the sole thread of its process:

* torch is imported but never used here: its OpenMP intra-op pool and interop
  pool start on the first parallel op, so none exists.  Thread settings are not
  touched either (``torch.set_num_threads`` or ``OMP_NUM_THREADS`` set here
  would leak into every child and make it differ from a fresh process); the
  children inherit the runner's environment unchanged.
* numpy's OpenBLAS starts a worker pool at import, but registers a
  ``pthread_atfork`` handler that shuts the pool down before every fork (it
  restarts lazily on the next BLAS call).  A probe fork at start-up triggers
  it, so afterwards the server has one native thread.
* onnxruntime is deliberately **not** pre-imported: importing it starts a
  native timer thread (a condition-variable wait loop in
  ``onnxruntime_pybind11_state``) with no fork handler, and a child forked while
  that thread holds its mutex could deadlock in onnxruntime.  Children import it
  themselves when they replay a counterexample (about 0.07 s).
* Before every fork the server checks ``threading.active_count() == 1`` and,
  on Linux, that ``/proc/self/task`` lists one thread; otherwise it refuses the
  request and the runner falls back to spawn mode.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import IO, NoReturn, Optional, Sequence

log = logging.getLogger(__name__)

# Imported once in the server; completeverify's own modules are walked as well.
PRELOAD = (
    "numpy",
    "torch",
    "onnx",
    "onnx.numpy_helper",
    "highspy",
    "completeverify",
    "completeverify.cli",
)
NOT_PRELOADED = ("onnxruntime",)  # starts a native thread at import: see the module docstring
SKIP_PREFIXES = ("completeverify.bench", "completeverify.__main__", "completeverify.cli.__main__")
START_TIMEOUT = 180.0  # seconds for the server to import everything and say it is ready
CHILD_START_TIMEOUT = 60.0  # seconds for the server to answer one fork request
REAP_TIMEOUT = 10.0  # seconds to wait for the exit status of a child whose group was killed


class ForkServerError(RuntimeError):
    """The fork server could not start, refused a request or died."""


# ================================================================ the server process


def _native_threads() -> Optional[int]:
    """Threads of this process as the kernel sees them (Linux), None where unknown."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def preload() -> tuple[list[str], list[str]]:
    """Import the heavy modules and completeverify's own; returns (imported, failed) module
    names."""
    done, failed = [], []

    def load(name: str) -> None:
        try:
            importlib.import_module(name)
            done.append(name)
        except Exception:  # the child imports it again and reports the error as spawn mode would
            failed.append(name)

    for name in PRELOAD:
        load(name)
    root = sys.modules.get("completeverify")
    if root is not None:
        for info in pkgutil.walk_packages(
            root.__path__, "completeverify.", onerror=lambda name: None
        ):
            if not info.name.startswith(SKIP_PREFIXES) and info.name not in sys.modules:
                load(info.name)
    return done, failed


def _send(fd: int, msg: dict) -> None:
    """One JSON line to the runner."""
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _exit_code(code: object) -> int:
    """The process exit code for ``SystemExit(code)``, as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def _run_target(target: Sequence[str], args: Sequence[str]) -> int:
    """Run the requested entry point with ``sys.argv[1:] = args``; the exit code."""
    import runpy

    try:
        if target[0] == "cli":
            from completeverify import cli

            sys.argv = [str(Path(cli.__file__).parent.parent / "__main__.py"), *args]
            return _exit_code(cli.main(list(args)))
        if target[0] == "module":
            sys.argv = [target[1], *args]
            runpy.run_module(target[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [target[1], *args]
            sys.path.insert(0, str(Path(target[1]).parent))
            runpy.run_path(target[1], run_name="__main__")
        return 0
    except SystemExit as exc:
        return _exit_code(exc.code)
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        return 1


def _child(req: dict, own_fds: Sequence[int]) -> NoReturn:
    """The forked child, already leading its own session: redirect, run, exit."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in own_fds:
            os.close(fd)
        stdin = os.open(os.devnull, os.O_RDONLY)
        stdout = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        stderr = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        code = _run_target(req["target"], req["args"])
        for thread in threading.enumerate():  # the interpreter waits for non-daemon threads too
            if not thread.daemon and thread is not threading.current_thread():
                thread.join()
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code & 0xFF)


def _fork(req: dict, own_fds: Sequence[int]) -> int:
    """Fork one child for ``req``; returns its pid once it leads its own session."""
    if threading.active_count() != 1:
        raise ForkServerError(f"{threading.active_count()} Python threads alive, refusing to fork")
    native = _native_threads()
    if native not in (None, 1):
        raise ForkServerError(f"{native} native threads alive, refusing to fork")
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(r)
        os.close(w)
        raise ForkServerError(f"fork failed: {exc}") from None
    if pid == 0:  # the child
        try:
            os.setsid()
        finally:
            os.close(w)  # tells the server the session exists
            os.close(r)
            _child(req, own_fds)
    os.close(w)
    os.read(r, 1)  # EOF once the child called setsid (or died)
    os.close(r)
    return pid


def _reap(children: dict[int, int], out: int) -> None:
    """Collect every exited child and report its exit code."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ident = children.pop(pid, None)
        if ident is not None:
            _send(out, {"ev": "exit", "id": ident, "rc": os.waitstatus_to_exitcode(status)})


def serve(proto_in: int, proto_out: int) -> int:
    """Answer fork requests until EOF on ``proto_in``; then kill every child's group."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    own_fds = (proto_in, proto_out, wake_r, wake_w)
    children: dict[int, int] = {}  # pid -> request id
    buf = b""
    while True:
        ready, _, _ = select.select([proto_in, wake_r], [], [])
        if wake_r in ready:
            try:
                while os.read(wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        _reap(children, proto_out)
        if proto_in not in ready:
            continue
        data = os.read(proto_in, 1 << 16)
        if not data:
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            req = json.loads(line)
            try:
                pid = _fork(req, own_fds)
            except ForkServerError as exc:
                _send(proto_out, {"ev": "refused", "id": req["id"], "message": str(exc)})
                continue
            children[pid] = req["id"]
            _send(proto_out, {"ev": "started", "id": req["id"], "pid": pid})
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return 0


def main() -> int:
    """The server process: protocol on stdin/stdout, stray output to stderr."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # a library printing on stdout must not corrupt the protocol
    os.close(devnull)
    failed = preload()[1]
    pid = os.fork()  # probe: lets fork handlers (OpenBLAS) stop their pools before the thread check
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    loaded = [m for m in sys.modules if m in PRELOAD or m.startswith("completeverify.")]
    _send(
        proto_out,
        {
            "ev": "ready",
            "pid": os.getpid(),
            "python_threads": threading.active_count(),
            "native_threads": _native_threads(),
            "preloaded": sorted(loaded),
            "failed": failed,
            "not_preloaded": [m for m in NOT_PRELOADED if m in sys.modules],
        },
    )
    return serve(proto_in, proto_out)


# ================================================================ the runner's side


def fork_target(argv: Sequence[str]) -> Optional[tuple[list[str], list[str]]]:
    """(target, args) for a command line the server can run in a forked child, None otherwise.

    Forkable: this interpreter running ``-m completeverify`` (the CLI's main),
    another ``-m module``, or a ``.py`` script, without interpreter options.
    """
    if len(argv) < 2:
        return None
    try:
        same = os.path.realpath(argv[0]) == os.path.realpath(sys.executable)
    except OSError:
        return None
    if not same:
        return None
    if argv[1] == "-m" and len(argv) >= 3:
        if argv[2] == "completeverify":
            return ["cli"], list(argv[3:])
        return ["module", argv[2]], list(argv[3:])
    if argv[1].endswith(".py") and not argv[1].startswith("-"):
        return ["script", os.path.abspath(argv[1])], list(argv[2:])
    return None


class ForkedChild:
    """One instance forked by the server; the runner waits on it, kills its group and reads its
    output."""

    def __init__(self, ident: int, stdout: Path, stderr: Path) -> None:
        """A request not yet answered."""
        self.ident = ident
        self.stdout_path, self.stderr_path = stdout, stderr
        self.pid: Optional[int] = None
        self.returncode: Optional[int] = None
        self.failure: Optional[str] = None
        self._started = threading.Event()
        self._exited = threading.Event()

    def _message(self, msg: dict) -> None:
        """A message from the server about this child."""
        if msg["ev"] == "started":
            self.pid = int(msg["pid"])
            self._started.set()
        elif msg["ev"] == "exit":
            self.returncode = int(msg["rc"])
            self._exited.set()
        else:
            self.failure = str(msg.get("message", "refused"))
            self._started.set()
            self._exited.set()

    def _server_died(self, reason: str) -> None:
        """No exit status will come."""
        if self.failure is None:
            self.failure = reason
        self._started.set()
        self._exited.set()

    def wait(self, timeout: Optional[float] = None) -> int:
        """The exit code; ``subprocess.TimeoutExpired`` after ``timeout``, ForkServerError if the
        server died."""
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout or 0.0)
        if self.returncode is None:
            raise ForkServerError(self.failure or "fork server gave no exit status")
        return self.returncode

    def reap(self) -> None:
        """After its group was killed: wait (bounded) until the server has collected the child."""
        self._exited.wait(REAP_TIMEOUT)

    def output(self) -> tuple[str, str]:
        """What the child wrote on stdout and stderr."""
        return tuple(
            p.read_text(errors="replace") if p.exists() else ""
            for p in (self.stdout_path, self.stderr_path)
        )  # type: ignore[return-value]

    def close(self) -> None:
        """Delete the output files."""
        for p in (self.stdout_path, self.stderr_path):
            try:
                p.unlink()
            except OSError:
                pass


class ForkServer:
    """The runner's handle on one fork server process; safe to use from several threads."""

    def __init__(self, start_timeout: float = START_TIMEOUT) -> None:
        """Not started yet: call ``start``."""
        self.start_timeout = start_timeout
        self.info: dict = {}
        self.dead: Optional[str] = None
        self._lock = threading.Lock()
        self._pending: dict[int, ForkedChild] = {}
        self._next = 0
        self._proc: Optional[subprocess.Popen] = None
        self._ready = threading.Event()
        self._tmp: Optional[Path] = None  # children's output files, made by start
        self._stderr: Optional[IO[bytes]] = None  # the server's stderr, a temporary file
        self._reader: Optional[threading.Thread] = None

    @property
    def pid(self) -> Optional[int]:
        """The server's pid."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> "ForkServer":
        """Start the server and wait until it has imported everything; ForkServerError if it
        cannot."""
        self._tmp = Path(tempfile.mkdtemp(prefix="cv-bench-fork-"))
        self._stderr = tempfile.TemporaryFile(dir=self._tmp)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "completeverify.bench.forkserver"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                start_new_session=True,
            )
        except OSError as exc:
            self.close()
            raise ForkServerError(f"cannot start the fork server: {exc}") from None
        try:
            self._reader = threading.Thread(
                target=self._read_loop, name="cv-bench-forkserver", daemon=True
            )
            self._reader.start()
            ready = self._ready.wait(self.start_timeout)
        except BaseException:  # interrupted while it imports
            self.close()
            raise
        if not ready or self.dead:
            reason = self.dead or f"not ready after {self.start_timeout:g} s"
            self.close()
            raise ForkServerError(reason)
        return self

    def _stderr_tail(self) -> str:
        """The last line the server wrote on stderr, if any."""
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            lines = [
                ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()
            ]
        except (OSError, ValueError):
            return ""
        return f": {lines[-1].strip()[:300]}" if lines else ""

    def _read_loop(self) -> None:
        """Dispatch the server's messages; on EOF mark the server dead."""
        assert self._proc is not None and self._proc.stdout is not None
        try:
            for line in self._proc.stdout:
                msg = json.loads(line)
                if msg.get("ev") == "ready":
                    self.info = msg
                    self._ready.set()
                    continue
                with self._lock:
                    child = self._pending.get(msg.get("id"))
                    if child is not None and msg.get("ev") != "started":
                        del self._pending[child.ident]
                if child is not None:
                    child._message(msg)
        except (OSError, ValueError) as exc:
            log.debug("fork server protocol: %s", exc)
        rc = self._proc.wait()
        self._die(f"fork server exited with code {rc}{self._stderr_tail()}")

    def _die(self, reason: str) -> None:
        """The server is gone: every pending child learns it."""
        with self._lock:
            if self.dead is None:
                self.dead = reason
            pending = list(self._pending.values())
            self._pending.clear()
        for child in pending:
            child._server_died(self.dead)
        self._ready.set()

    def fork(self, target: Sequence[str], args: Sequence[str]) -> ForkedChild:
        """Fork a child running ``target`` with ``args``; returns once it leads its own session."""
        with self._lock:
            if self.dead is not None or self._proc is None or self._proc.stdin is None:
                raise ForkServerError(self.dead or "fork server not running")
            self._next += 1
            assert self._tmp is not None
            child = ForkedChild(
                self._next, self._tmp / f"{self._next}.out", self._tmp / f"{self._next}.err"
            )
            self._pending[child.ident] = child
            req = {
                "id": child.ident,
                "target": list(target),
                "args": list(args),
                "stdout": str(child.stdout_path),
                "stderr": str(child.stderr_path),
            }
            try:
                self._proc.stdin.write((json.dumps(req) + "\n").encode())
                self._proc.stdin.flush()
            except (OSError, ValueError) as exc:
                del self._pending[child.ident]
                raise ForkServerError(f"fork server unreachable: {exc}") from None
        if not child._started.wait(CHILD_START_TIMEOUT):
            raise ForkServerError(f"fork server did not answer within {CHILD_START_TIMEOUT:g} s")
        if child.pid is None:
            child.close()
            raise ForkServerError(child.failure or "fork refused")
        return child

    def close(self) -> None:
        """Stop the server (it kills the groups of children still running) and delete its files."""
        proc = self._proc
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=REAP_TIMEOUT)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=REAP_TIMEOUT)
        if self._stderr is not None:
            self._stderr.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "ForkServer":
        """Start it."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop it."""
        self.close()


if __name__ == "__main__":
    sys.exit(main())
