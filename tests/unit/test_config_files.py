"""Configuration files: round trips, unknown keys and wrong types, --config with flag overrides."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from typing import Literal

import pytest
from paths import REPO

import completeverify as cv
from completeverify.cli import build_parser
from completeverify.cli.verify import config_from_args
from completeverify.config_io import config_from_dict, config_from_yaml_text, config_to_dict

ROOT = REPO
CONFIGS = ROOT / "benchmarks" / "configs"


def _changed() -> cv.VerifyConfig:
    """A config with a value changed in every section."""
    base = cv.VerifyConfig()
    return dataclasses.replace(
        base,
        timeout=12.5,
        mode="relu-split",
        seed=7,
        attack=dataclasses.replace(base.attack, enabled=False, restarts=3),
        milp=dataclasses.replace(base.milp, margin=2e-5),
        bab=dataclasses.replace(base.bab, batch_size=17, branching="width"),
    )


def test_dict_and_yaml_round_trip(tmp_path):
    config = _changed()
    assert cv.VerifyConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert cv.VerifyConfig.from_yaml(path) == config
    assert cv.VerifyConfig.from_yaml(path).to_yaml() == config.to_yaml()


def test_partial_file_keeps_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("bab:\n  batch_size: 8\nmilp:\n  margin: 1e-5\n")  # YAML 1.1: 1e-5 is a str
    config = cv.VerifyConfig.from_yaml(path)
    assert config.bab.batch_size == 8 and config.milp.margin == 1e-5
    assert dataclasses.replace(config, bab=cv.VerifyConfig().bab) == cv.VerifyConfig()
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    assert cv.VerifyConfig.from_yaml(tmp_path / "empty.yaml") == cv.VerifyConfig()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"bab": {"batch_sise": 3}}, "unknown key 'bab.batch_sise' (did you mean 'batch_size'?)"),
        ({"nonsense": 1}, "unknown key 'nonsense'"),
        ({"bab": {"batch_size": "many"}}, "bab.batch_size: expected an integer, got 'many' (str)"),
        ({"bab": {"batch_size": True}}, "bab.batch_size: expected an integer"),
        ({"use_bounds": 1}, "use_bounds: expected true or false"),
        ({"timeout": "soon"}, "timeout: expected a number"),
        ({"attack": 3}, "attack: expected a mapping"),
        (
            {"mode": "fast"},
            "mode: expected one of 'auto', 'relu-split', 'input-split', 'milp', got 'fast'",
        ),
        ({"timeout": -1}, "timeout must be positive"),
        ({"bab": {"input_alpha_min_rate": 1.5}}, "bab.input_alpha_min_rate must be a number in"),
        ({"bab": {"input_alpha_min_rate": -0.1}}, "bab.input_alpha_min_rate must be a number in"),
        ({"bab": {"input_alpha_min_rate": float("nan")}}, "bab.input_alpha_min_rate must be a"),
        (["timeout"], "expected a mapping"),
    ],
)
def test_bad_keys_and_types_name_the_path(data, message):
    with pytest.raises(cv.InputError) as info:
        cv.VerifyConfig.from_dict(data, "my.yaml")
    assert str(info.value).startswith("my.yaml: ") and message in str(info.value)


def test_bad_yaml_names_the_line():
    with pytest.raises(cv.InputError, match=r"f.yaml: not valid YAML at line 3"):
        config_from_yaml_text(cv.VerifyConfig, "mode: auto\nbab: [1, 2\nseed: 1\n", "f.yaml")
    with pytest.raises(cv.InputError, match="cannot read the config file"):
        cv.VerifyConfig.from_yaml("/nonexistent/c.yaml")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_load(path):
    cv.VerifyConfig.from_yaml(path)


def test_shipped_configs_cover_the_categories():
    names = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert {"default", "acasxu", "mnist_fc", "oval21"} <= names


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["verify", "net.onnx", "prop.vnnlib", *argv])


def test_flags_override_only_when_given(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("timeout: 40\nmode: milp\nseed: 3\nbab:\n  batch_size: 9\n  race_milp: true\n")
    config = config_from_args(_args("--config", str(path)))
    assert (config.timeout, config.mode, config.seed, config.bab.batch_size) == (40, "milp", 3, 9)
    assert config.bab.race_milp and config.use_bounds and config.attack.enabled
    config = config_from_args(
        _args("--config", str(path), "--timeout", "5", "--batch-size", "2", "--no-attack")
    )
    assert (config.timeout, config.mode, config.seed, config.bab.batch_size) == (5, "milp", 3, 2)
    assert config.bab.race_milp and not config.attack.enabled
    assert config.attack.restarts == cv.VerifyConfig().attack.restarts
    assert config_from_args(_args()) == cv.VerifyConfig()


def test_every_option_of_every_subcommand_has_help():
    parser = build_parser()
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers.extend(action.choices.values())
    missing = [
        f"{p.prog} {'/'.join(a.option_strings) or a.dest}"
        for p in parsers
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction)
        and a.dest != "help"
        and not (a.help and a.help.strip())
    ]
    assert not missing, missing


def test_version_and_bad_config_on_the_command_line(tmp_path):
    for module in ("completeverify", "completeverify.cli"):  # both run the command line
        p = subprocess.run(
            [sys.executable, "-m", module, "--version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0 and p.stdout.strip() == f"completeverify {cv.__version__}"
    bad = tmp_path / "bad.yaml"
    bad.write_text("bab:\n  batch_sise: 4\n")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "completeverify",
            "verify",
            str(ROOT / "examples" / "mlp.onnx"),
            str(ROOT / "examples" / "mlp_unsat.vnnlib"),
            "--config",
            str(bad),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and p.stderr.strip().startswith("error: ")
    assert "unknown key 'bab.batch_sise'" in p.stderr and "Traceback" not in p.stderr


@dataclasses.dataclass(frozen=True)
class _Inner:
    kind: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)


@dataclasses.dataclass(frozen=True)
class _Outer:
    limit: float | None = None
    inner: _Inner = dataclasses.field(default_factory=_Inner)


def test_literal_optional_and_tuple_fields():
    """Option names typed as Literal, optional numbers and tuples read and round-trip too."""
    cfg = config_from_dict(_Outer, {"limit": 3, "inner": {"kind": "b", "sizes": [4, 5, 6]}})
    assert cfg == _Outer(3.0, _Inner("b", (4, 5, 6)))
    assert config_from_dict(_Outer, config_to_dict(cfg)) == cfg
    assert config_from_dict(_Outer, {"limit": None}).limit is None
    with pytest.raises(cv.InputError, match=r"inner.kind: expected one of 'a', 'b', got 'c'"):
        config_from_dict(_Outer, {"inner": {"kind": "c"}})
    with pytest.raises(cv.InputError, match=r"inner.sizes\[1\]: expected an integer"):
        config_from_dict(_Outer, {"inner": {"sizes": [1, "x"]}})
