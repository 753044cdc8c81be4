"""Coverage-guided fuzzing of the VNN-LIB reader, the ONNX import and the verify CLI (atheris).

usage: python tests/property/fuzz/fuzz.py {vnnlib,onnx,cli} [libFuzzer options] [CORPUS_DIR ...]

The first corpus folder given receives new inputs; the committed seeds are in
tests/property/fuzz/corpus/<harness>/.  A crash (an exception other than CompleteVerifyError, an
input over 5 s, memory growth over 1 GiB, or a CLI exit other than 0 and 2) is written
as crash-<hash> in the current folder.  See README, "Untrusted input and hard limits".
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["completeverify"]):
    import completeverify.cli
    import completeverify.onnx_import  # noqa: F401

import contract


def main() -> None:
    """Pick the harness named by the first argument and hand the rest to libFuzzer."""
    if len(sys.argv) < 2 or sys.argv[1] not in contract.HARNESSES:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(contract.HARNESSES)}}} [libFuzzer options]")
    harness = contract.HARNESSES[sys.argv[1]]
    if sys.argv[1] == "cli":
        import completeverify.api
        import completeverify.pipeline  # noqa: F401
    atheris.Setup([sys.argv[0]] + sys.argv[2:], harness)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
