"""A user's own target through the exact workflow: the defaults a System fills in, the errors
before any sampling, and the exact MALA reference's moments against the known ones."""

from __future__ import annotations

import json
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc.cli import main
from uqmcmc.targets import LJCluster, Phi4
from uqmcmc.targets.loading import source_record
from uqmcmc.workflows import ExactConfig, run_exact
from uqmcmc.workflows.system import System

#: Standard deviations of the user's Gaussian below: E[x_i] = 0, E[x_i^2] = SIGMA_i^2.
SIGMA = (1.0, 2.0, 0.5)

OWN = textwrap.dedent(
    f"""
    import jax.numpy as jnp

    class Stretched:
        '''A Gaussian with standard deviations sigma * scale; only action and grad.'''
        def __init__(self, scale=1.0):
            self.var = (jnp.asarray({SIGMA!r}) * scale) ** 2
        def action(self, x):
            return 0.5 * jnp.sum(x**2 / self.var)
        def grad(self, x):
            return x / self.var
    """
)


@pytest.fixture
def own_module(user_module):
    return user_module("user_system", OWN)


class Bare:
    def action(self, x):
        return 0.5 * jnp.sum(x**2)

    def grad(self, x):
        return x


def test_defaults_are_named_and_supplied():
    system = System.of(Bare(), shape=(2, 2))
    assert system.defaults == (
        "observables", "starts", "reference", "params", "surrogate", "network",
    )  # fmt: skip
    obs = system.observables(jnp.arange(4.0).reshape(2, 2))
    np.testing.assert_allclose(obs["x2"], [0, 1, 4, 9])
    np.testing.assert_allclose(obs["sd"], np.mean([0, 1, 4, 9]))  # x dS/dx with dS/dx = x
    assert system.params == {"target": "Bare"}
    assert System.load(Bare, shape=(2,)).params == {"target": "Bare"}
    assert System.of(Phi4(4, 0.5, 1.0)).defaults == ()
    assert System.of(LJCluster(N=4)).defaults == ("reference",)


def test_shape_is_required_once():
    with pytest.raises(ValueError, match="has no `shape`: give the shape"):
        System.of(Bare()).require_shape()
    with pytest.raises(ValueError, match="has no `shape`: give the shape"):
        System.of(Bare()).initial_positions(None, 2)
    with pytest.raises(ValueError, match="disagrees with the target's shape"):
        System.of(LJCluster(N=4), shape=(5, 3))


def test_settings_fail_before_sampling(own_module):
    with pytest.raises(ValueError, match="has no `shape`"):
        ExactConfig(target=f"{own_module}:Stretched").validate()
    with pytest.raises(ValueError, match="phi\\^4's settings"):
        ExactConfig(target=f"{own_module}:Stretched", beta=0.3, shape=(3,)).validate()
    with pytest.raises(ValueError, match="phi\\^4's parameters are set with L, beta and g"):
        ExactConfig(params={"L": 4}).validate()


def test_warmup_is_needed_to_tune_and_a_users_target_is_confirmed_on_resume(
    own_module, tmp_path, capsys
):
    with pytest.raises(ValueError, match="warmup must be >= 1 to tune the MALA step"):
        ExactConfig(target=f"{own_module}:Stretched", shape=(3,), warmup=0).validate()
    out = tmp_path / "run"
    args = ["exact", "--target", f"{own_module}:Stretched", "--shape", "3", "--chains", "2",
            "--steps", "40", "--warmup", "10", "--thin", "1", "--no-progress"]  # fmt: skip
    (tmp_path / "run.incomplete").mkdir()
    manifest = {"command": "exact", "settings": dict(
        target=f"{own_module}:Stretched", shape=[3], chains=2, steps=40, warmup=10, thin=1,
        out=str(out)), "overwrite": False}  # fmt: skip
    (tmp_path / "run.incomplete" / "manifest.json").write_text(json.dumps(manifest))
    # the folder names code to import: resuming it asks the user to name that code too
    assert main(["exact", "--resume", str(out), "--no-progress"]) == 2
    assert "resume with target='user_system:Stretched'" in capsys.readouterr().err
    assert main(["exact", "--resume", str(out), "--target", "other:Thing"]) == 2
    assert "other settings: target" in capsys.readouterr().err
    # the file defining the target changed since the run started: its pieces are stale
    manifest["settings"]["target_source"] = {"file": f"{own_module}.py", "sha256": "0" * 64}
    (tmp_path / "run.incomplete" / "manifest.json").write_text(json.dumps(manifest))
    assert main(["exact", "--resume", str(out), "--target", f"{own_module}:Stretched"]) == 2
    assert "started with another version of user_system.py" in capsys.readouterr().err
    manifest["settings"].update(source_record(f"{own_module}:Stretched"))  # the same file
    (tmp_path / "run.incomplete" / "manifest.json").write_text(json.dumps(manifest))
    assert main(["exact", "--resume", str(out), "--target", f"{own_module}:Stretched",
                 "--no-progress"]) == 0  # fmt: skip
    written = json.loads((out / "manifest.json").read_text())["settings"]["target_source"]
    assert written == source_record(f"{own_module}:Stretched")["target_source"]
    assert (out / "exact.nc").exists()
    assert main([*args, "--out", str(tmp_path / "wide"), "--param", "scale=2"]) == 0
    printed = capsys.readouterr().out
    assert "x[2]" in printed and "not tabulated" not in printed


def test_long_default_observables_are_named_as_not_tabulated(own_module, tmp_path, capsys):
    """39 coordinates (13 atoms in 3-D) are too many rows: the command says where they are."""
    code = main(["exact", "--target", f"{own_module}:Stretched", "--shape", "13,3",
                 "--chains", "2", "--steps", "20", "--warmup", "5", "--thin", "1",
                 "--no-progress", "--out", str(tmp_path / "cloud")])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "not tabulated (too many components; in exact.nc): x, x2" in printed


def _z_scores(rows, scale=1.0):
    """z of every coordinate's mean and second moment against the truth for scale 1."""
    table = {r["observable"]: r for r in rows}
    z = []
    for i, s in enumerate(SIGMA):
        for name, truth in ((f"x[{i}]", 0.0), (f"x2[{i}]", s * s)):
            z.append((table[name]["mean"] - truth) / table[name]["err"])
    return np.abs(z)


@pytest.mark.slow
def test_user_target_by_module_path_samples_its_moments(own_module, tmp_path, capsys):
    """The exact MALA reference of a target with only action and grad, named on the command
    line: every coordinate's mean and second moment within 4 MCSE of the truth. Positive
    control: the same check on a target 15 % wider fails (the test can see such an error)."""
    common = ["--shape", "3", "--chains", "8", "--steps", "6000", "--warmup", "1000",
              "--thin", "2", "--no-progress", "--seed", "3"]  # fmt: skip
    code = main(["exact", "--target", f"{own_module}:Stretched", *common,
                 "--out", str(tmp_path / "run")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "user_system:Stretched: 8 chains x 6000 steps (thin 2), exact MALA" in out
    assert "default observables: each coordinate x, its square x2 and the Stein term sd" in out
    assert "not mixed" not in out  # R-hat <= 1.01 for every row
    assert (tmp_path / "run" / "exact.nc").exists()

    cfg = dict(target=f"{own_module}:Stretched", shape=(3,), chains=8, steps=6000,
               warmup=1000, thin=2, seed=3)  # fmt: skip
    rows = run_exact(**cfg, progress=False).rows
    assert _z_scores(rows).max() < 4, rows
    sd = next(r for r in rows if r["observable"] == "sd")  # the Stein term: exactly 1
    assert abs(sd["mean"] - 1.0) < 4 * sd["err"], sd
    assert min(r["ess_bulk"] for r in rows) > 400
    wide = run_exact(**cfg, params={"scale": 1.15}, progress=False).rows
    assert _z_scores(wide).max() > 4, wide


def test_cli_reports_a_bad_target_without_sampling(own_module, capsys):
    code = main(["exact", "--target", f"{own_module}:Stretched", "--param", "size=3",
                 "--out", "unused", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "does not take parameter 'size'; it takes scale" in err
