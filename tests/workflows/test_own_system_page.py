"""docs/own_system.md stays true: its target file, run by its command (shorter), prints the
lines the page shows, and its Python calls work."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from uqmcmc.cli import main
from uqmcmc.workflows import System

PAGE = Path(__file__).resolve().parents[2] / "docs" / "own_system.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_page_target_runs_as_the_page_says(user_module, capsys):
    source = next(b for b in _blocks("python") if "class Dimer" in b)
    name = user_module("my_energies", source)
    command = next(b for b in _blocks("bash") if "uqmcmc exact" in b)
    args = shlex.split(command.replace("\\\n", " "))[1:]
    assert args[:3] == ["exact", "--target", f"{name}:Dimer"]
    # the page's command, shorter
    args[args.index("--steps") + 1] = "200"
    args[args.index("--chains") + 1] = "2"
    code = main([*args, "--warmup", "100", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    shown = next(b for b in _blocks("text") if "default" in b).splitlines()
    printed = out.splitlines()
    assert printed[0] == shown[0].replace("8 chains x 20000", "2 chains x 200"), printed[0]
    assert printed[1 : len(shown)] == shown[1:], printed
    assert "x2[5]" in out and (Path("dimer-exact") / "exact.nc").exists()
    system = System.load(f"{name}:Dimer", {"temperature": 0.3}, shape=(2, 3))
    assert system.defaults == (
        "observables",
        "starts",
        "reference",
        "params",
        "surrogate",
        "network",
    )


def _page_compare(user_module, marker: str):
    """The page's target module (imported as ``my_energies``) and the validated settings of
    its first bash block holding ``marker``: ``(module name, settings, option words)``."""
    from uqmcmc.cli import _compare_config, _parser

    source = next(b for b in _blocks("python") if "class Dimer" in b)
    name = user_module("my_energies", source)
    command = next(b for b in _blocks("bash") if marker in b)
    args = _parser().parse_args(shlex.split(command.replace("\\\n", " "))[1:])
    cfg, words = _compare_config(args)
    return name, cfg.validate(), words


def test_the_page_compare_command_and_settings_file_are_valid(user_module):
    """The page's compare command and its TOML file give the same valid settings (checked,
    not run: the run itself is tested in test_compare_targets)."""
    import tomllib

    from uqmcmc.workflows import CompareConfig

    name, cfg, _ = _page_compare(user_module, "uqmcmc compare")
    assert (cfg.target, cfg.params, cfg.shape, cfg.quick) == (
        f"{name}:Dimer", {"temperature": 0.3}, (2, 3), True,
    )  # fmt: skip
    assert cfg.surrogate_kind == "energy"
    toml = next(b for b in _blocks("toml") if "[params]" in b)
    from_file = CompareConfig.quick_config(**tomllib.loads(toml)).validate()
    assert (from_file.target, from_file.params, from_file.shape) == (cfg.target, cfg.params,
                                                                     cfg.shape)  # fmt: skip


def test_the_page_domain_shift_command_is_valid(user_module):
    """The page's domain-shift command: chains at one temperature, training set at another."""
    name, cfg, words = _page_compare(user_module, "--train-param")
    assert (cfg.target, cfg.params, cfg.train_params) == (
        f"{name}:Dimer", {"temperature": 0.5}, {"temperature": 0.3},
    )  # fmt: skip
    assert cfg.train_system().target.temperature == 0.3
    assert cfg.system().target.temperature == 0.5
    assert words["train_params"] == "--train-param"


def test_train_params_from_a_file_and_the_command_line_merge(tmp_path):
    """A ``[train_params]`` table in the settings file, one key overridden on the command
    line; an unknown parameter is refused before any work."""
    from uqmcmc.cli import _compare_config, _parser

    path = tmp_path / "run.toml"
    path.write_text('target = "lj"\nquick = true\n[train_params]\ntemperature = 0.2\n'
                    "wall_strength = 30.0\n")  # fmt: skip
    args = _parser().parse_args(["compare", "--config", str(path),
                                 "--train-param", "temperature=0.25"])  # fmt: skip
    cfg, _ = _compare_config(args)
    assert cfg.validate().train_params == {"temperature": 0.25, "wall_strength": 30.0}
    cfg.train_params = {"temp": 0.2}
    with pytest.raises(ValueError, match="does not take parameter 'temp'"):
        cfg.validate()
