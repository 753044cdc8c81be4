"""Reading untrusted files with hard size limits, gzip detected by its magic bytes.

Like ``errors.py`` this module depends on nothing but the standard library and
``completeverify.errors``, so that ``completeverify.vnnlib`` can use it without
importing the core.  Sizes are checked while streaming: a gzip bomb stops at the
first chunk past a limit instead of after it has filled memory.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Callable

from .errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_RATIO_FLOOR = 16 << 20  # the ratio limit applies once this much has been decompressed

ErrorFactory = Callable[[str], InputError]


def _mib(n: int) -> str:
    """A byte count for messages."""
    return f"{n} bytes" if n < (1 << 20) else f"{n / (1 << 20):.1f} MiB"


def read_limited(
    path: str | os.PathLike,
    what: str,
    error: ErrorFactory,
    *,
    max_file_bytes: int,
    max_decompressed_bytes: int,
    max_compression_ratio: int,
) -> bytes:
    """The (gunzipped) contents of ``path``; ``error(message)`` builds the exception raised.

    ``what`` names the kind of file in messages ("model", "property").  Refuses a missing
    path, a directory or other non-regular file, a file over ``max_file_bytes``, gzip output
    over ``max_decompressed_bytes`` or over ``max_compression_ratio`` times the input, and
    truncated or corrupt gzip data.
    """
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise error("file not found") from None
    except (OSError, ValueError) as exc:
        raise error(f"cannot read the {what} file: {_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"is a directory, not a {what} file")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"is not a regular file (give the path of a {what} file)")
    if info.st_size > max_file_bytes:
        raise error(
            f"file is {_mib(info.st_size)}, over the limit of {_mib(max_file_bytes)} "
            "(raise limits.max_file_bytes if the file is trusted)"
        )
    try:
        with open(name, "rb") as handle:
            head = handle.read(2)
            if head != GZIP_MAGIC:
                return head + handle.read(max_file_bytes + 1 - len(head))
            handle.seek(0)
            return _gunzip(handle, error, max_decompressed_bytes, max_compression_ratio)
    except OSError as exc:
        raise error(f"cannot read the {what} file: {_reason(exc)}") from None


def gunzip_limited(
    data: bytes, error: ErrorFactory, *, max_decompressed_bytes: int, max_compression_ratio: int
) -> bytes:
    """Decompress gzip ``data`` held in memory under the same limits as read_limited."""
    import io

    return _gunzip(io.BytesIO(data), error, max_decompressed_bytes, max_compression_ratio)


def _reason(exc: BaseException) -> str:
    """The short reason of an OS error."""
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


def _gunzip(handle, error: ErrorFactory, max_out: int, max_ratio: int) -> bytes:
    """Stream-decompress a gzip file (several members allowed) with output limits."""
    parts: list[bytes] = []
    total_in = total_out = 0
    decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                break
            total_in += len(chunk)
            while chunk:
                budget = max_out - total_out + 1
                out = decomp.decompress(chunk, min(budget, _CHUNK))
                total_out += len(out)
                parts.append(out)
                _check_out(error, total_in, total_out, max_out, max_ratio)
                chunk = decomp.unconsumed_tail
                if decomp.eof:
                    rest = decomp.unused_data + chunk
                    if not rest.strip(b"\x00"):
                        chunk = b""
                        break
                    if rest[:2] != GZIP_MAGIC:
                        raise error("trailing garbage after the gzip data")
                    decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                    chunk = rest
        while not decomp.eof:  # flush what is buffered without new input
            out = decomp.decompress(b"", _CHUNK)
            if not out:
                break
            total_out += len(out)
            parts.append(out)
            _check_out(error, total_in, total_out, max_out, max_ratio)
    except zlib.error as exc:
        raise error(f"corrupt gzip data ({exc})") from None
    if not decomp.eof:
        raise error("truncated gzip data: the compressed stream ends early")
    return b"".join(parts)


def _check_out(
    error: ErrorFactory, total_in: int, total_out: int, max_out: int, max_ratio: int
) -> None:
    """Refuse decompressed output past the size or ratio limit."""
    if total_out > max_out:
        raise error(
            f"decompresses to more than {_mib(max_out)} "
            "(raise limits.max_decompressed_bytes if the file is trusted)"
        )
    if total_out > _RATIO_FLOOR and total_out > max_ratio * max(total_in, 1):
        raise error(
            f"gzip data expands more than {max_ratio}-fold (a decompression bomb?); "
            "raise limits.max_compression_ratio if the file is trusted"
        )


def one_line(text: str, limit: int = 400) -> str:
    """``text`` with control characters and line breaks turned into spaces, shortened."""
    flat = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def flatten_error(exc: BaseException) -> None:
    """Make an exception's message one line in place (its args become that line)."""
    message = str(exc)
    if len(exc.args) == 1 and isinstance(exc.args[0], str) and exc.args[0] == message:
        line = one_line(message)
        if line != message:
            exc.args = (line,)
