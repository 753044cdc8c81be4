"""A short, seeded fuzzing run of each harness in the default test run (about 25 s in all),
and every input a fuzzer ever broke the contract with, replayed (tests/property/fuzz/regressions/).

Fails on any exception other than CompleteVerifyError, an input over 5 s, memory growth
over 1 GiB, or a CLI exit other than 0 / 2 with one error line.  Uses atheris when it
is installed, hypothesis mutations of the seed corpus otherwise.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import contract
import pytest

HERE = Path(__file__).resolve().parent
# seconds of fuzzing per harness in the default run (the CLI runs a verification per input)
SHORT_RUN = {"vnnlib": 4, "onnx": 3, "onnx_struct": 4, "cli": 6}


def _regressions() -> list[tuple[str, Path]]:
    """(harness, file) of every saved input that once broke the contract."""
    folder = HERE / "regressions"
    return [
        (h, p) for h in contract.HARNESSES for p in sorted((folder / h).glob("*")) if p.is_file()
    ]


@pytest.mark.parametrize("harness,path", _regressions(), ids=lambda v: getattr(v, "name", v))
def test_regression_inputs(harness, path):
    contract.HARNESSES[harness](path.read_bytes())


@pytest.mark.parametrize("harness", sorted(contract.HARNESSES))
def test_seed_corpus_meets_the_contract(harness):
    for data in contract.seeds(harness):
        contract.HARNESSES[harness](data)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
@pytest.mark.parametrize("harness", sorted(SHORT_RUN))
def test_short_seeded_fuzz_run(harness, tmp_path):
    new = tmp_path / "corpus"
    new.mkdir()
    rss = 1024 + (0 if harness == "vnnlib" else 512)  # libFuzzer counts the baseline too
    cmd = [
        sys.executable,
        str(HERE / "fuzz.py"),
        harness,
        "-seed=1",
        f"-max_total_time={SHORT_RUN[harness]}",
        "-timeout=30",
        f"-rss_limit_mb={rss}",
        f"-artifact_prefix={tmp_path}/",
        str(new),
        str(contract.CORPUS / harness),
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=SHORT_RUN[harness] + 120,
        check=False,
        cwd=tmp_path,
    )
    tail = proc.stderr[-3000:]
    assert proc.returncode == 0 and "ContractBroken" not in proc.stderr, tail
    assert "Done" in proc.stderr, tail


@pytest.mark.parametrize("harness", sorted(SHORT_RUN))
def test_short_hypothesis_run(harness):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    seeds = contract.seeds(harness)

    @hypothesis.settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @hypothesis.given(
        st.sampled_from(seeds), st.integers(0, 4096), st.integers(0, 64), st.binary(max_size=32)
    )
    def mutate(seed: bytes, at: int, cut: int, insert: bytes) -> None:
        """Splice random bytes into a seed (cut some out) and run the harness on it."""
        at = at % (len(seed) + 1)
        contract.HARNESSES[harness](seed[:at] + insert + seed[at + cut :])

    mutate()
