"""Running instances: one verifier process per instance, sequentially, in a local pool, or on Dask.

Every instance runs as ``python -m completeverify verify ONNX VNNLIB --timeout T
--json --result-file FILE`` in a new session (its own process group).  The
parent waits at most ``T + grace`` seconds, then kills the whole group, so a
hung instance costs only itself and leaves no process behind.
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
from .results import ResultRow
from .suite import Instance

log = logging.getLogger(__name__)

DEFAULT_GRACE = 5.0  # seconds past the instance timeout before its process group is killed
VERDICTS = ("sat", "unsat", "unknown", "timeout")
CONNECT_TIMEOUT = 20.0  # seconds to reach a Dask scheduler


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


def result_file_name(inst: Instance) -> str:
    """A file name for the instance's VNN-COMP result file, unique per (onnx, vnnlib)."""
    digest = hashlib.sha1(f"{inst.onnx},{inst.vnnlib}".encode()).hexdigest()[:8]

    def short(p: str) -> str:
        name = re.sub(r"(\.gz)?$", "", Path(p).name)
        return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:60]

    return f"{short(inst.onnx)}__{short(inst.vnnlib)}__{digest}.txt"


def make_job(inst: Instance, timeout: float, files_dir: Path, out_dir: Path,
             command: Optional[Sequence[str]] = None, grace: float = DEFAULT_GRACE) -> Job:
    """The job for one instance; result files go to ``files_dir``."""
    result_file = (files_dir / result_file_name(inst)).resolve()
    rel = os.path.relpath(result_file, out_dir.resolve())
    return Job(inst.onnx, inst.vnnlib, str(inst.onnx_path), str(inst.vnnlib_path), timeout,
               str(result_file), rel, tuple(command or default_command()), grace)


# Process groups of running children, so an interrupt can end them all.
_LIVE: dict[int, subprocess.Popen] = {}
_LIVE_LOCK = threading.Lock()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it leads a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """Kill every verifier process this process started and is still waiting for."""
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
    for proc in procs:
        _kill_group(proc)


def _first_line(text: str) -> str:
    """The first non-blank line, ``error:`` prefix removed."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[len("error:"):].strip() if line.startswith("error:") else line
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


def run_job(job: Job) -> ResultRow:
    """Run one instance in its own process group with a hard timeout; never raises for the instance's faults."""
    try:
        os.unlink(job.result_file)  # a stale file from an earlier run must not count
    except FileNotFoundError:
        pass
    Path(job.result_file).parent.mkdir(parents=True, exist_ok=True)
    argv = [*job.command, job.onnx_path, job.vnnlib_path, "--timeout", f"{job.timeout:g}",
            "--json", "--result-file", job.result_file]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as exc:
        return _row(job, "error", 0.0, f"cannot start the verifier: {exc}")
    with _LIVE_LOCK:
        _LIVE[proc.pid] = proc
    try:
        try:
            stdout, stderr = proc.communicate(timeout=job.timeout + job.grace)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            seconds = time.monotonic() - start
            return _row(job, "timeout", seconds, f"killed after {seconds:.1f} s (hard timeout)")
        seconds = time.monotonic() - start
        return _interpret(job, proc.returncode, stdout or "", stderr or "", seconds)
    finally:
        _kill_group(proc)  # also ends any descendant left in the group
        if proc.poll() is None:
            proc.wait()
        with _LIVE_LOCK:
            _LIVE.pop(proc.pid, None)


def run_sequential(jobs: Sequence[Job]) -> Iterator[ResultRow]:
    """One job after the other, in this process."""
    for job in jobs:
        yield run_job(job)


def run_pool(jobs: Sequence[Job], workers: int) -> Iterator[ResultRow]:
    """A local pool of ``workers`` threads, each driving one verifier process at a time."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cv-bench")
    pending: set[Future] = set()
    try:
        pending = {pool.submit(run_job, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
    finally:
        for fut in pending:
            fut.cancel()
        if pending:  # interrupted: end the running children so the threads return at once
            kill_all()
        pool.shutdown(wait=True, cancel_futures=True)


def _connect(address: str):
    """A dask.distributed Client for the scheduler at ``address``."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--scheduler needs dask.distributed: pip install 'completeverify[dask]'") from None
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
            key = "cv-bench-" + hashlib.sha1(f"{job.onnx},{job.vnnlib},{time.time_ns()}".encode()).hexdigest()
            futures.append(client.submit(run_job, job, key=key, pure=False))
        for fut in as_completed(futures, loop=client.loop):
            try:
                row = fut.result()
            except Exception as exc:  # cluster-side failure, not the instance's
                log.warning("instance failed on the cluster, not recorded (rerun to retry): %s", exc)
                continue
            yield row
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
        client.close()


def execute(jobs: Sequence[Job], workers: int = 1, scheduler: Optional[str] = None) -> Iterator[ResultRow]:
    """Rows of the jobs as they finish, on the chosen executor."""
    if scheduler:
        return run_dask(jobs, scheduler)
    if workers > 1:
        return run_pool(jobs, workers)
    return run_sequential(jobs)

