"""host_memory.keep_freed_memory: glibc serves mid-sized blocks from its heap afterwards, and the
command line applies it to its own process only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import completeverify.host_memory as host_memory

# in a fresh interpreter: is a 24 MiB malloc served by its own mmap (glibc's IS_MMAPPED bit
# in the chunk header) before / after keep_freed_memory()?
_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from completeverify.host_memory import keep_freed_memory
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    p = libc.malloc(24 << 20)
    header = ctypes.c_size_t.from_address(p - ctypes.sizeof(ctypes.c_size_t)).value
    libc.free(p)
    print(header & 2)
    """
)


@pytest.mark.skipif(not host_memory.has_glibc(), reason="glibc's allocator settings only")
def test_mid_sized_blocks_come_from_the_heap_after_keep_freed_memory():
    # glibc reads MALLOC_*_ variables at start-up: the probe runs without them
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def probe(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, mode],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return int(out.stdout.strip())

    assert probe("default") == 2  # glibc's own default: a block this size is its own mmap
    assert probe("keep") == 0


def test_command_line_applies_it_to_its_own_process_only(monkeypatch, tmp_path):
    from completeverify.cli import main

    calls = []
    monkeypatch.setattr(host_memory, "keep_freed_memory", lambda: calls.append(1) or True)
    # `bench` on a missing suite: an input error before any instance runs.  (Not `verify`: as
    # the process's own command line it arms the hard-stop watchdog, counted from the start of
    # this pytest process, which would end it.)
    args = ["bench", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "out.csv")]
    # an embedding program calling main() with its own arguments: its allocator is left alone
    assert main(args) == 2
    assert calls == []
    # the process's own command line
    monkeypatch.setattr(sys, "argv", ["completeverify", *args])
    assert main() == 2
    assert calls == [1]
    assert not (tmp_path / "out.csv").exists()
