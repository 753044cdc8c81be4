"""The C allocator's settings for a verifier process (glibc only).

Branch and bound allocates and frees tensors of a few hundred KiB to a few MiB thousands of
times a second.  With glibc's defaults each of those is either a fresh ``mmap`` (above the
adaptive mmap threshold) or trimmed back to the kernel when freed, so the next allocation
page-faults its memory in again: on MNIST 256x4 prop_6_0.03 a third of the run was kernel
time (5.6 million minor faults in 120 s).  Serving blocks up to 32 MiB from the heap and
never trimming it about doubled the domains searched there (2685 -> 5335 in 120 s); seven
oval21 rows, interleaved with and without it, took 237.8 -> 219.1 s.  The cost is that freed
memory stays with the process until it exits: the peak, not the current, footprint.

This changes a process-wide setting, so the library never does it on import or in
``verify()``; the command line does it for its own process (``completeverify verify`` and
the other subcommands, and each instance a ``bench`` run forks).  Programs that embed the
verifier for long runs may call ``keep_freed_memory()`` themselves.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# glibc's largest mmap threshold on 64-bit hosts (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD = 32 * 1024 * 1024
TOP_PAD = 256 * 1024 * 1024
# freed heap memory is never handed back while the process runs
TRIM_THRESHOLD = 2**31 - 1


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (musl's mallopt is a stub), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def has_glibc() -> bool:
    """Whether keep_freed_memory() can apply here."""
    return _glibc() is not None


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse; True when applied, False where not (no glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD),
    )
    return all(mallopt(param, value) == 1 for param, value in settings)


__all__ = ["MMAP_THRESHOLD", "TOP_PAD", "TRIM_THRESHOLD", "has_glibc", "keep_freed_memory"]
