"""The second core: how many torch threads a verification uses, and work shared with a forked
process.

An MLP's verification runs with one torch thread (two intra-op threads did not pay there:
README, issue 14 measurements); a CNN's runs with two where it may (``torch_threads``).

Some stages are many independent searches, such as the sides of a layer in prefix refinement.
Those split their items in two and hand one half to a forked copy of the process, which
answers through a pipe. A worker that fails or does not answer in time contributes nothing;
the caller treats its items as not done, which never makes a bound tighter than proven. The
worker is always killed before the call returns, so no process outlives it (and the command
line ends every descendant on exit anyway).

It pays where each item is seconds of work (a prefix side's search). It did not for the rows
of one alpha-CROWN call (the pair cuts' bounds, split in two: 12.9 -> 17.2 s on MNIST 256x6
prop_3_0.05), whose cost per step hardly shrinks with half the rows.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def second_core_free() -> bool:
    """True when this process may run on two cores and is not a pool's worker (a
    multiprocessing pool, such as ``certify --workers``, already shares the cores among its
    workers, and a daemonic worker may not have children)."""
    import multiprocessing as mp

    return cores() > 1 and not mp.current_process().daemon


def torch_threads(setting: int | str, convolutional: bool) -> int:
    """The torch intra-op thread count for one verification (``VerifyConfig.torch_threads``).

    A number is used as given. ``"auto"`` is one thread, except on a network with convolutions,
    whose batched convolutions two threads make 25-40% faster (oval21, the same domains): there
    it is two where this process may run on two cores, is not a pool's worker (the pool already
    shares the cores) and ``OMP_NUM_THREADS`` does not ask for fewer. ``bench --workers`` runs
    its verifiers with one (``verify --threads 1``)."""
    if setting != "auto":
        return int(setting)
    if not convolutional or not second_core_free():
        return 1
    n = 2
    try:
        n = min(n, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:  # unset or not a number: no cap
        pass
    return max(n, 1)


def in_two_processes(work: Callable[[list], list], items: list, stop: float) -> list:
    """``work(items[0::2]) + work(items[1::2])``, the second half in a forked process (the
    second core), whose answer is awaited until ``stop`` (a time.monotonic() instant; inf: no
    limit) plus 2 s. A worker that has not answered by then, or failed, contributes nothing
    (the caller sees which items are missing). The worker is killed before returning either
    way. All of it runs here where fork is not available, without a second core (one core, or
    a pool's worker: ``second_core_free``), or when the fork fails."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods() or not second_core_free():
        return work(items)
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_worker, args=(work, items[1::2], send), daemon=True)
    try:
        proc.start()
    except OSError:  # no process to spare (limits, memory): all of it here
        recv.close()
        send.close()
        return work(items)
    send.close()
    try:
        mine = work(items[0::2])
        theirs: list = []
        # no deadline: wait for the answer (a worker that dies closes the pipe: EOFError)
        wait = None if math.isinf(stop) else max(0.0, stop - time.monotonic()) + 2.0
        if recv.poll(wait):
            try:
                theirs = recv.recv()
            except (EOFError, OSError):  # the worker died without answering
                theirs = []
        return mine + theirs
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join()


def _worker(work: Callable[[list], list], items: list, send) -> None:
    """The forked process: one torch thread, ``work(items)`` sent back ([] on any error)."""
    import torch

    torch.set_num_threads(1)
    try:
        out = work(items)
    except Exception:  # noqa: BLE001 - a failed worker only means fewer items done
        log.exception("the second process failed")
        out = []
    send.send(out)
    send.close()
