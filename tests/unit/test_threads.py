"""How many torch threads a verification runs with (``torch_threads``, issue 14).

``"auto"`` gives a network with convolutions two threads (its batched convolutions run 25-40%
faster on oval21) and everything else one; a number is used as given; a pool's worker, a
process pinned to one core and ``OMP_NUM_THREADS=1`` get one thread.
"""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest
import torch
from torch import nn

import completeverify as cv
from completeverify import pipeline, second_core
from completeverify.cli import main
from completeverify.config import VerifyConfig
from completeverify.errors import InputError
from completeverify.second_core import torch_threads

from nets import vnnlib_text


@pytest.fixture
def two_cores(monkeypatch):
    """A process that may run on two cores, with no OMP_NUM_THREADS."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(second_core, "cores", lambda: 2)


def test_auto_is_two_threads_on_convolutional_networks_only(two_cores, monkeypatch):
    assert torch_threads("auto", True) == 2
    assert torch_threads("auto", False) == 1
    assert torch_threads(3, False) == 3 and torch_threads(1, True) == 1
    monkeypatch.setattr(second_core, "cores", lambda: 16)
    assert torch_threads("auto", True) == 2  # two at most: the measured gain
    monkeypatch.setattr(second_core, "cores", lambda: 1)
    assert torch_threads("auto", True) == 1
    monkeypatch.setattr(second_core, "cores", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert torch_threads("auto", True) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # not a number: no cap
    assert torch_threads("auto", True) == 2


def test_a_pool_worker_gets_one_thread():
    """certify --workers and users' pools already share the cores among their workers."""
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.apply(torch_threads, ("auto", True)) == 1


def _conv_net_and_property(tmp_path):
    """A Conv -> ReLU -> Linear -> ReLU -> Linear module on a 1x4x4 input and a property
    (y0 - y1 <= -100 on a small box) that the root bounds prove unreachable."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2), nn.ReLU(), nn.Linear(2, 2)
    ).eval()
    prop = tmp_path / "p.vnnlib"
    lower, upper = np.zeros(16), np.full(16, 0.05)
    prop.write_text(vnnlib_text(lower, upper, [(np.array([[1.0, -1.0]]), np.array([-100.0]))]))
    return net, prop


@pytest.mark.parametrize(
    "setting, convolutional, expected",
    [("auto", True, 2), ("auto", False, 1), (1, True, 1), (2, False, 2)],
)
def test_the_verification_runs_with_the_count_and_restores_it(
    tmp_path, monkeypatch, two_cores, setting, convolutional, expected
):
    net, prop = _conv_net_and_property(tmp_path)
    if not convolutional:
        net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2), nn.ReLU(), nn.Linear(2, 2)).eval()
    seen = []
    inner = pipeline._verify_graph

    def spy(*args):
        seen.append(torch.get_num_threads())
        return inner(*args)

    monkeypatch.setattr(pipeline, "_verify_graph", spy)
    before = torch.get_num_threads()
    config = VerifyConfig(torch_threads=setting, timeout=30)
    result = cv.verify(net, str(prop), config=config, example_input=(1, 1, 4, 4))
    assert result.status == cv.Status.UNSAT  # C y <= -100 is far out of reach
    assert seen == [expected]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -2, True, 1.5, "two"])
def test_bad_thread_counts_are_input_errors(bad):
    with pytest.raises(InputError, match="torch_threads"):
        VerifyConfig(torch_threads=bad)


def test_thread_counts_in_a_config_file_and_on_the_command_line(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("torch_threads: auto\n")
    assert VerifyConfig.from_yaml(good).torch_threads == "auto"
    good.write_text("torch_threads: 2\n")
    assert VerifyConfig.from_yaml(good).torch_threads == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("torch_threads: lots\n")
    with pytest.raises(InputError, match="torch_threads"):
        VerifyConfig.from_yaml(bad)
    net, prop = _conv_net_and_property(tmp_path)
    onnx_path = tmp_path / "n.onnx"
    torch.onnx.export(
        net, (torch.zeros(1, 1, 4, 4),), str(onnx_path), dynamo=False, opset_version=13
    )
    capsys.readouterr()
    for threads in ("auto", "1"):
        assert main(["verify", str(onnx_path), str(prop), "--threads", threads]) == 0
        assert capsys.readouterr().out.strip() == "unsat"
    for bad in ("0", "x"):
        with pytest.raises(SystemExit) as stop:
            main(["verify", str(onnx_path), str(prop), "--threads", bad])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert f"expected auto or a whole number of at least 1, got '{bad}'" in err
