"""The watchdog contract: a `verify` process ends at most 2 s after --timeout counted from its
start, for both solvers and every mode, and leaves no solver process or temporary file behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from nets import mlp_onnx, random_mlp

OVERSHOOT_S = 2.0
TIMEOUT_S = 3


@pytest.fixture(scope="module")
def hard(tmp_path_factory) -> tuple[Path, Path]:
    """A 12-input, 3x80 ReLU network and a property 1% above the best of 1000 sign-gradient
    ascents: no attack reaches it, and no mode decides it within a few seconds (ReLU
    splitting runs for thousands of domains)."""
    import torch

    folder = tmp_path_factory.mktemp("hard")
    rng = np.random.default_rng(0)
    layers = random_mlp(rng, [12, 80, 80, 80, 2])
    onnx.save(mlp_onnx(layers, input_shape=(1, 12)), folder / "net.onnx")
    params = [(torch.tensor(w), torch.tensor(b)) for w, b in layers]
    x = (
        torch.rand(1000, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
        - 1
    )

    def margin(x: torch.Tensor) -> torch.Tensor:
        for k, (w, b) in enumerate(params):
            x = x @ w.T + b
            x = torch.relu(x) if k < len(params) - 1 else x
        return x[:, 0] - x[:, 1]

    for step in range(200):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(margin(x).sum(), x)
        x = (x.detach() + 0.03 * (1 - step / 200) * grad.sign()).clamp(-1, 1)
    best = float(margin(x).max())
    threshold = best * 1.01 if best > 0 else best * 0.99
    lines = [f"(declare-const X_{i} Real)" for i in range(12)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(2)]
    lines += [f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))" for i in range(12)]
    lines += [f"(assert (>= (- Y_0 Y_1) {threshold:.6f}))"]
    (folder / "prop.vnnlib").write_text("\n".join(lines) + "\n")
    return folder / "net.onnx", folder / "prop.vnnlib"


def _leftovers(tmp: Path) -> tuple[list[str], list[int]]:
    """Solver folders left in ``tmp`` and live processes whose command line names ``tmp``."""
    folders = sorted(p.name for p in tmp.iterdir() if p.name.startswith("completeverify-"))
    needle = str(tmp).encode()
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if needle in handle.read() and _running(int(entry)):
                        procs.append(int(entry))
            except OSError:
                continue
    return folders, procs


def _overshoot(hard, tmp_path: Path, solver: str, mode: str) -> None:
    """Run verify on the hard instance; check the exit time, the answer and the leftovers."""
    net, prop = hard
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = tmp_path / "result.txt"
    env = dict(os.environ, TMPDIR=str(tmp))
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "completeverify",
            "verify",
            str(net),
            str(prop),
            "--timeout",
            str(TIMEOUT_S),
            "--solver",
            solver,
            "--mode",
            mode,
            "--result-file",
            str(result),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    answer = proc.stdout.strip().splitlines()[0]
    assert answer in ("timeout", "sat"), proc.stdout  # sat only with a replayed counterexample
    assert result.read_text().splitlines()[0] == answer
    assert elapsed <= TIMEOUT_S + OVERSHOOT_S, (
        f"{solver}/{mode}: ended {elapsed - TIMEOUT_S:.2f} s late"
    )
    time.sleep(0.2)
    assert _leftovers(tmp) == ([], []), "solver processes or temporary folders survived"


@pytest.mark.parametrize("solver,mode", (("highs", "auto"), ("pulp", "milp")))
def test_overshoot_representative(hard, tmp_path, solver, mode):
    _overshoot(hard, tmp_path, solver, mode)


@pytest.mark.slow
@pytest.mark.parametrize("solver", ("highs", "pulp"))
@pytest.mark.parametrize("mode", ("auto", "relu-split", "input-split", "milp"))
def test_overshoot_every_solver_and_mode(hard, tmp_path, solver, mode):
    _overshoot(hard, tmp_path, solver, mode)


CHILD = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    from completeverify.cli.watchdog import Watchdog, on_terminate, timeout_answer
    from completeverify.solvers.children import private_tmpdir
    signal.signal(signal.SIGTERM, on_terminate)
    with private_tmpdir("completeverify-cbc-") as folder:
        open(os.path.join(folder, "model.mps"), "w").write("x")
        # a stand-in for CBC: a child whose command line names the solve's folder, in its own group
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", folder],
                                 start_new_session=True)
        print(child.pid, folder, flush=True)
        if sys.argv[1] == "watchdog":
            Watchdog(0.5, timeout_answer(0.5, None, False), from_process_start=False).arm()
        time.sleep(30)
""")


@pytest.mark.parametrize("how", ("watchdog", "sigterm"))
def test_no_solver_child_or_file_survives(tmp_path, how):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, how], stdout=subprocess.PIPE, text=True)
    pid_text, folder = proc.stdout.readline().split()
    if how == "sigterm":
        proc.terminate()
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == (0 if how == "watchdog" else 128 + 15)
    if how == "watchdog":
        assert out.strip() == "timeout"
    time.sleep(0.2)
    assert not Path(folder).exists()
    assert not _running(int(pid_text))


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan's zombie may wait for init)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def test_json_timeout_carries_the_searchs_stats_and_ends_promptly(hard):
    """The verifier's own deadline ends with the hard stop's, so on a timeout the answer is the
    verifier's (with its stats), and the process leaves at once instead of tearing the
    interpreter down (1-2 s after a long search, past the hard stop's grace)."""
    net, prop = hard
    timeout = 5.0
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "completeverify", "verify", str(net), str(prop)]
        + ["--timeout", str(timeout), "--mode", "relu-split", "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    answer = json.loads(lines[0])
    if answer["status"] == "sat":  # only with a replayed counterexample
        return
    assert answer["status"] == "timeout"
    assert answer.get("stats", {}).get("bab_domains", 0) > 0, answer  # the search's answer
    assert elapsed <= timeout + 1.0, f"ended {elapsed - timeout:.2f} s late"


CLAIM = textwrap.dedent("""
    import sys, threading, time
    from completeverify.cli.watchdog import Watchdog
    def slow_answer():
        time.sleep(0.5)
        print("watchdog", flush=True)
    dog = Watchdog(0.1, slow_answer, grace=0.0, from_process_start=False)
    if sys.argv[1] == "verdict-first":
        assert dog.claim()
        dog.fire()  # the verdict owns the answer: the watchdog writes nothing, exits nothing
        print("verdict", flush=True)
    else:
        dog.arm()
        time.sleep(0.3)  # the watchdog has begun to answer
        if dog.claim():
            print("verdict", flush=True)
        else:
            threading.Event().wait()
""")


@pytest.mark.parametrize("first", ("verdict-first", "watchdog-first"))
def test_exactly_one_answer_when_the_verdict_and_the_hard_stop_meet(first):
    proc = subprocess.run(
        [sys.executable, "-c", CLAIM, first],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == (["verdict"] if first == "verdict-first" else ["watchdog"])
