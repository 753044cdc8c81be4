"""The VNN-COMP scripts end to end: install (idempotent), prepare (ends leftover verifiers of this
tool only), run (the CATEGORY's config, the timeout, the result file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from paths import REPO

ROOT = REPO
SCRIPTS = ROOT / "benchmarks" / "vnncomp"
NET = ROOT / "examples" / "mlp.onnx"
SAT = ROOT / "examples" / "mlp_sat.vnnlib"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("setsid") is None, reason="needs bash and setsid"
)


def _script(name: str, *args, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _env(tmp_path: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(COMPLETEVERIFY_PYTHON=sys.executable, COMPLETEVERIFY_PID_DIR=str(tmp_path / "pids"))
    env.update(extra)
    return env


def _leftover(tag: str) -> subprocess.Popen:
    """A process that looks like a verifier of this tool (its own process group)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            "-m",
            "completeverify",
            "verify",
            tag,
        ],
        start_new_session=True,
    )


def test_three_scripts_end_to_end(tmp_path):
    env = _env(tmp_path)
    p = _script("install_tool.sh", "v1", env=env)
    assert p.returncode == 0, p.stderr
    assert "already installed" in p.stdout and "unsat" in p.stdout.splitlines()[-1]

    pids = tmp_path / "pids"
    pids.mkdir()
    ours = _leftover("stale")
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        (pids / f"{ours.pid}.pid").write_text(f"{ours.pid}\n")
        (pids / f"{other.pid}.pid").write_text(f"{other.pid}\n")  # not a verifier: left alone
        p = _script("prepare_instance.sh", "v1", "acasxu", NET, SAT, env=env)
        assert p.returncode == 0, p.stderr
        assert ours.wait(timeout=10) != 0 and other.poll() is None
        assert not list(pids.iterdir())
    finally:
        for proc in (ours, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    result = tmp_path / "out" / "result.txt"
    result.parent.mkdir()
    p = _script("run_instance.sh", "v1", "acasxu_2023", NET, SAT, result, 60, env=env)
    assert p.returncode == 0, p.stderr
    assert "configs/acasxu.yaml" in p.stdout  # the year suffix falls back to the category's file
    text = result.read_text()
    assert text.startswith("sat\n((X_0 ")
    values = dict(line.strip("() \n").split() for line in text.splitlines()[1:])
    x = np.array([float(values[f"X_{i}"]) for i in range(5)], dtype=np.float32).reshape(1, 5)
    y = (
        ort.InferenceSession(onnx.load(NET).SerializeToString(), providers=["CPUExecutionProvider"])
        .run(None, {"x": x})[0]
        .reshape(-1)
    )
    assert y[0] - y[1] <= 0.939398  # the counterexample is one, in the judge's runtime
    assert not list(pids.iterdir())  # the pid file is gone once the verifier ended


def test_run_instance_bad_input_and_unknown_category(tmp_path):
    env = _env(tmp_path)
    result = tmp_path / "r.txt"
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(assert (<= X_0 1.0)\n")
    p = _script("run_instance.sh", "v1", "no_such_category", NET, bad, result, 30, env=env)
    assert p.returncode == 0 and "configs/default.yaml" in p.stdout
    assert result.read_text() == "error\n"
    p = _script("prepare_instance.sh", "v1", "x", NET, tmp_path / "missing.vnnlib", env=env)
    assert p.returncode != 0 and "file not found" in p.stderr
    p = _script("run_instance.sh", "v2", "x", NET, SAT, result, 30, env=env)
    assert p.returncode != 0 and "expected version 'v1'" in p.stderr


def test_hard_timeout_writes_timeout(tmp_path):
    """A verifier that overruns is killed at TIMEOUT + 10 s and the result says timeout."""
    fake = tmp_path / "python"
    fake.write_text("#!/usr/bin/env bash\nsleep 60\n")
    fake.chmod(0o755)
    env = _env(tmp_path, COMPLETEVERIFY_PYTHON=str(fake))
    result = tmp_path / "r.txt"
    start = time.monotonic()
    p = _script("run_instance.sh", "v1", "acasxu", NET, SAT, result, 0.5, env=env, timeout=60)
    assert p.returncode == 0 and result.read_text() == "timeout\n"
    assert time.monotonic() - start < 30


@pytest.mark.slow
def test_install_tool_makes_its_own_venv_once(tmp_path):
    """A fresh venv (seeing the system's torch, so nothing large is downloaded), then a no-op
    rerun."""
    env = dict(os.environ)
    env.pop("COMPLETEVERIFY_PYTHON", None)
    env.update(
        COMPLETEVERIFY_VENV=str(tmp_path / "venv"),
        BASE_PYTHON=sys.executable,
        COMPLETEVERIFY_VENV_ARGS="--system-site-packages",
    )
    p = _script("install_tool.sh", "v1", env=env, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "venv" / "bin" / "python").exists()
    p = _script("install_tool.sh", "v1", env=env, timeout=900)
    assert p.returncode == 0 and "torch 2.13.0 already installed" in p.stdout
    assert "completeverify already installed" in p.stdout
