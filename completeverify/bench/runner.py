"""Running instances: one verifier process per instance, sequentially, in a local pool, or on Dask.

Every instance runs as ``python -m completeverify verify ONNX VNNLIB --timeout T
--json --result-file FILE`` in a new session (its own process group).  The
parent waits at most ``T + grace`` seconds, then kills the whole group, so a
hung instance costs only itself and leaves no process behind.

Two isolations start that process.  ``spawn`` starts a fresh interpreter per
instance (``subprocess.Popen``), paying the imports of torch, onnx and
completeverify (about 1-1.5 s) every time.  ``fork`` (the default for local
runs) forks it from a server that imported them once (``forkserver``): the
child runs the CLI's ``main`` with the same argv, in its own session, and is
timed, killed and interpreted exactly like a spawned one.  If the server cannot
start, refuses to fork or dies, the run goes on in spawn mode (a warning says
so; an instance whose server died under it is run again).  Dask workers always
spawn.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from ..errors import InputError
from .forkserver import ForkedChild, ForkServer, ForkServerError, fork_target
from .results import ResultRow
from .suite import Instance

log = logging.getLogger(__name__)

DEFAULT_GRACE = 5.0  # seconds past the instance timeout before its process group is killed
VERDICTS = ("sat", "unsat", "unknown", "timeout")
CONNECT_TIMEOUT = 20.0  # seconds to reach a Dask scheduler
ISOLATIONS = ("fork", "spawn")
DEFAULT_ISOLATION = "fork"


def default_command() -> list[str]:
    """The verifier command prefix: this interpreter running ``completeverify verify``."""
    return [sys.executable, "-m", "completeverify", "verify"]


@dataclass(frozen=True)
class Job:
    """Everything one verifier process needs; picklable, so it can travel to a Dask worker."""

    onnx: str
    vnnlib: str
    onnx_path: str
    vnnlib_path: str
    timeout: float
    result_file: str
    result_file_rel: str
    command: tuple[str, ...]
    grace: float = DEFAULT_GRACE
    config: Optional[str] = None  # a VerifyConfig YAML file (absolute path) for ``--config``
    # ``verify --threads``: 1 where several verifiers share the machine (bench --workers, Dask)
    threads: Optional[int] = None


def result_file_name(inst: Instance) -> str:
    """A file name for the instance's VNN-COMP result file, unique per (onnx, vnnlib)."""
    digest = hashlib.sha1(f"{inst.onnx},{inst.vnnlib}".encode()).hexdigest()[:8]

    def short(p: str) -> str:
        name = re.sub(r"(\.gz)?$", "", Path(p).name)
        return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60]

    return f"{short(inst.onnx)}__{short(inst.vnnlib)}__{digest}.txt"


def make_job(
    inst: Instance,
    timeout: float,
    files_dir: Path,
    out_dir: Path,
    command: Optional[Sequence[str]] = None,
    grace: float = DEFAULT_GRACE,
    config: Optional[Path] = None,
    threads: Optional[int] = None,
) -> Job:
    """The job for one instance; result files go to ``files_dir``; config: the options file
    every instance is verified with (``verify --config``); threads: ``verify --threads``
    (None: the verifier's default)."""
    result_file = (files_dir / result_file_name(inst)).resolve()
    rel = os.path.relpath(result_file, out_dir.resolve())
    return Job(
        inst.onnx,
        inst.vnnlib,
        str(inst.onnx_path),
        str(inst.vnnlib_path),
        timeout,
        str(result_file),
        rel,
        tuple(command or default_command()),
        grace,
        str(Path(config).resolve()) if config is not None else None,
        threads,
    )


class _Spawned:
    """A verifier started as a fresh interpreter (spawn isolation)."""

    def __init__(self, argv: Sequence[str]) -> None:
        """Start it in a new session; OSError if it cannot start."""
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self._output = ("", "")

    def wait(self, timeout: float) -> int:
        """The exit code, output collected; ``subprocess.TimeoutExpired`` after ``timeout``."""
        stdout, stderr = self.proc.communicate(timeout=timeout)
        self._output = (stdout or "", stderr or "")
        return self.proc.returncode

    def output(self) -> tuple[str, str]:
        """stdout and stderr."""
        return self._output

    def reap(self) -> None:
        """After its group was killed: drain the pipes and collect the exit status."""
        if self.proc.poll() is None or not (self.proc.stdout is None or self.proc.stdout.closed):
            self.proc.communicate()

    def close(self) -> None:
        """Nothing left to clean up."""


# Running children (pid -> handle), so an interrupt can end them all.
_LIVE: dict[int, object] = {}
_LIVE_LOCK = threading.Lock()


def _kill_group(pid: int) -> None:
    """SIGKILL a child's whole process group (it leads a session of its own)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """Kill every verifier process this process started and is still waiting for."""
    with _LIVE_LOCK:
        pids = list(_LIVE)
    for pid in pids:
        _kill_group(pid)


class Launcher:
    """Starts verifier processes: forked from a pre-imported server, or fresh interpreters.

    Thread-safe; one per local run.  Use as a context manager: the fork server
    starts on enter and stops on exit.  Any failure of the server switches the
    launcher to spawn for good (one warning).
    """

    def __init__(self, isolation: str = DEFAULT_ISOLATION) -> None:
        """Nothing started yet."""
        if isolation not in ISOLATIONS:
            raise InputError(
                f"unknown isolation '{isolation}' (choose from {', '.join(ISOLATIONS)})"
            )
        self.isolation = isolation
        self.server: Optional[ForkServer] = None
        self.fallback: Optional[str] = None
        self.stopping = False  # read and set under _LIVE_LOCK
        self._lock = threading.Lock()

    def __enter__(self) -> "Launcher":
        """Start the fork server (fork isolation)."""
        if self.isolation == "fork":
            try:
                self.server = ForkServer().start()
                log.info("fork server %s ready: %s", self.server.pid, self.server.info)
            except ForkServerError as exc:
                self.fail(exc)
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the fork server."""
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            server.close()

    def fail(self, exc: BaseException) -> None:
        """The fork server is unusable: spawn from now on."""
        with self._lock:
            server, self.server = self.server, None
            first = self.fallback is None
            if first:
                self.fallback = str(exc)
        if first:
            log.warning(
                "fork server unusable (%s); the remaining instances run as fresh processes "
                "(--isolation spawn)",
                exc,
            )
        if server is not None:
            server.close()

    def stop(self) -> None:
        """The run is interrupted: kill every running child; children started from now on are killed
        at once."""
        with _LIVE_LOCK:
            self.stopping = True
        kill_all()

    def launch(self, argv: Sequence[str]):
        """Start one verifier process in a new session: a ForkedChild or a _Spawned; OSError if it
        cannot."""
        server = self.server
        target = fork_target(argv) if server is not None else None
        if server is not None and target is not None:
            try:
                return server.fork(*target)
            except ForkServerError as exc:
                self.fail(exc)
        return _Spawned(argv)


def _first_line(text: str) -> str:
    """The first non-blank line, ``error:`` prefix removed."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[len("error:") :].strip() if line.startswith("error:") else line
    return ""


def _parse_json(stdout: str) -> Optional[dict]:
    """The last line of stdout that is a JSON object with a status, if any."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "status" in obj:
            return obj
    return None


def _row(job: Job, status: str, seconds: float, message: str = "", cex: str = "") -> ResultRow:
    """A results row for the job."""
    return ResultRow(job.onnx, job.vnnlib, job.timeout, status, round(seconds, 3), cex, message)


def _interpret(job: Job, rc: int, stdout: str, stderr: str, seconds: float) -> ResultRow:
    """Turn a finished child's exit code and output into a row."""
    if rc < 0:
        sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        return _row(job, "error", seconds, f"verifier killed by {sig}")
    if rc != 0:
        reason = _first_line(stderr) or f"verifier exited with code {rc}"
        return _row(job, "error", seconds, reason)
    obj = _parse_json(stdout)
    if obj is None:
        snippet = _first_line(stdout)[:200] or "no output"
        return _row(job, "error", seconds, f"verifier printed no JSON verdict: {snippet}")
    status = str(obj.get("status", "")).lower()
    message = str(obj.get("message", "") or "")
    if status not in VERDICTS:
        return _row(job, "error", seconds, f"verifier returned unknown status '{status}'")
    cex = ""
    if status == "sat":
        try:
            ok = Path(job.result_file).read_text().startswith("sat")
        except OSError:
            ok = False
        if ok:
            cex = job.result_file_rel
        else:
            message = (message + "; " if message else "") + "result file missing"
    return _row(job, status, seconds, message, cex)


def job_argv(job: Job) -> list[str]:
    """The verifier's command line for the job."""
    return [
        *job.command,
        job.onnx_path,
        job.vnnlib_path,
        "--timeout",
        f"{job.timeout:g}",
        "--json",
        "--result-file",
        job.result_file,
        *(["--config", job.config] if job.config is not None else []),
        *(["--threads", str(job.threads)] if job.threads is not None else []),
    ]


def run_job(job: Job, launcher: Optional[Launcher] = None) -> ResultRow:
    """Run one instance in its own process group with a hard timeout; never raises for the
    instance's faults.

    Without a launcher (as on Dask workers) the verifier is a fresh interpreter.
    """
    try:
        os.unlink(job.result_file)  # a stale file from an earlier run must not count
    except FileNotFoundError:
        pass
    Path(job.result_file).parent.mkdir(parents=True, exist_ok=True)
    argv = job_argv(job)
    start = time.monotonic()
    try:
        child = launcher.launch(argv) if launcher is not None else _Spawned(argv)
    except OSError as exc:
        return _row(job, "error", 0.0, f"cannot start the verifier: {exc}")
    pid = child.pid
    assert pid is not None  # launch() returns once the child runs (ForkServer.fork checks it)
    with _LIVE_LOCK:
        _LIVE[pid] = child
        stopping = launcher is not None and launcher.stopping
    try:
        if stopping:  # the run was interrupted while this child started
            _kill_group(pid)
        try:
            rc = child.wait(job.timeout + job.grace)
        except subprocess.TimeoutExpired:
            _kill_group(pid)
            child.reap()
            seconds = time.monotonic() - start
            return _row(job, "timeout", seconds, f"killed after {seconds:.1f} s (hard timeout)")
        except ForkServerError as exc:  # the server died under the instance: no exit status to read
            assert launcher is not None and isinstance(child, ForkedChild)
            launcher.fail(exc)
        else:
            seconds = time.monotonic() - start
            stdout, stderr = child.output()
            return _interpret(job, rc, stdout, stderr, seconds)
    finally:
        _kill_group(pid)  # also ends any descendant left in the group
        child.reap()
        child.close()
        with _LIVE_LOCK:
            _LIVE.pop(pid, None)
    if launcher.stopping:
        return _row(job, "error", time.monotonic() - start, "interrupted")
    log.warning("running %s,%s again as a fresh process", job.onnx, job.vnnlib)
    return run_job(job, launcher)


def run_sequential(jobs: Sequence[Job], isolation: str = DEFAULT_ISOLATION) -> Iterator[ResultRow]:
    """One job after the other (driven by one worker thread, so an interrupt never lands inside a
    start)."""
    return run_pool(jobs, 1, isolation)


def run_pool(
    jobs: Sequence[Job], workers: int, isolation: str = DEFAULT_ISOLATION
) -> Iterator[ResultRow]:
    """A local pool of ``workers`` threads, each driving one verifier process at a time.

    Interrupts (KeyboardInterrupt, closing the generator) reach only this
    generator's thread, never a worker in the middle of starting a process;
    the launcher is told to stop, every running child's group is killed, and a
    child that a worker was just starting is killed as soon as it exists.
    """
    with Launcher(isolation) as launcher:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cv-bench")
        pending: set[Future] = set()
        try:
            pending = {pool.submit(run_job, job, launcher) for job in jobs}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()
            if pending:  # interrupted: end the running children so the threads return at once
                launcher.stop()
            pool.shutdown(wait=True, cancel_futures=True)


def _connect(address: str):
    """A dask.distributed Client for the scheduler at ``address``."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            "--scheduler needs dask.distributed: pip install 'completeverify[dask]'"
        ) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot connect to the Dask scheduler at {address}: {exc}") from None


def run_dask(jobs: Sequence[Job], address: str) -> Iterator[ResultRow]:
    """Submit every job to a Dask cluster; each worker thread runs one verifier process at a time.

    Paths are absolute, so workers must see the same file system.  A task that
    fails on the cluster side (say a lost worker, after Dask's own retries) gets
    no row, so a later resume runs it again.
    """
    from distributed import as_completed

    client = _connect(address)
    futures = []
    try:
        for job in jobs:
            key = (
                "cv-bench-"
                + hashlib.sha1(f"{job.onnx},{job.vnnlib},{time.time_ns()}".encode()).hexdigest()
            )
            futures.append(client.submit(run_job, job, key=key, pure=False))
        for fut in as_completed(futures, loop=client.loop):
            try:
                row = fut.result()
            except Exception as exc:  # cluster-side failure, not the instance's
                log.warning(
                    "instance failed on the cluster, not recorded (rerun to retry): %s", exc
                )
                continue
            yield row
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
        client.close()


def check_isolation(isolation: Optional[str], scheduler: Optional[str] = None) -> None:
    """InputError unless ``isolation`` is None, fork or spawn, and fork is not asked of Dask."""
    if isolation is not None and isolation not in ISOLATIONS:
        raise InputError(f"unknown isolation '{isolation}' (choose from {', '.join(ISOLATIONS)})")
    if scheduler and isolation == "fork":
        raise InputError(
            "--isolation fork is for local runs; Dask workers start fresh processes "
            "(use --isolation spawn or leave it out)"
        )


def execute(
    jobs: Sequence[Job],
    workers: int = 1,
    scheduler: Optional[str] = None,
    isolation: Optional[str] = None,
) -> Iterator[ResultRow]:
    """Rows of the jobs as they finish, on the chosen executor.

    ``isolation`` is ``fork`` or ``spawn``; None means fork locally and spawn
    on Dask (the only isolation Dask workers have).
    """
    check_isolation(isolation, scheduler)
    if scheduler:
        return run_dask(jobs, scheduler)
    isolation = isolation or DEFAULT_ISOLATION
    if workers > 1:
        return run_pool(jobs, workers, isolation)
    return run_sequential(jobs, isolation)
