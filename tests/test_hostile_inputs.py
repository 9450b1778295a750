"""Hostile inputs (issue 15): every probe gives a named error before any work, or the right
behaviour. Each case asserts the exception type (or exit code) and the key words of the message,
so none regresses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc import _arviz
from uqmcmc.cli import main
from uqmcmc.diagnostics.report_folder import StagedFolder
from uqmcmc.mcmc import (
    CeperleyDewing,
    DeltaEstimate,
    ExactDelta,
    GradientDelta,
    mala,
    rmh,
    run_chains,
)
from uqmcmc.mcmc import checkerboard as cb
from uqmcmc.mcmc.estimators import Cache
from uqmcmc.mcmc.metropolis import NoisyState, metropolis_step
from uqmcmc.targets import Gaussian, Phi4
from uqmcmc.uq import io
from uqmcmc.workflows import CompareConfig, ExactConfig
from uqmcmc.workflows.compare_config import read_toml

REPO = Path(__file__).resolve().parents[1]


# -- 1. settings of the compare workflow (library) ----------------------------------------
@pytest.mark.parametrize(
    "settings, words",
    [
        ({"rule": "simpsons"}, ["rule must be one of", "'simpsons'"]),
        ({"member_steps": 1}, ["member_steps (1) must be at least thin (5)"]),
        ({"steps": 3}, ["steps (3) must be at least thin (5)"]),
        ({"exact_steps": 2}, ["exact_steps (2) must be at least thin"]),
        ({"L": 7}, ["L must be even"]),
        ({"L": "8"}, ["L must be an integer"]),
        ({"L": 1}, ["L must be an integer >= 2"]),
        ({"chains": 1}, ["chains must be an integer >= 2"]),
        ({"step_size": "0.1"}, ["step_size must be a finite number > 0", "'0.1'"]),
        ({"step_size": -0.1}, ["step_size must be a finite number > 0"]),
        ({"out": 5}, ["out must be a folder name", "5"]),
        ({"out": ""}, ["out must be a folder name"]),
        ({"beta": True}, ["beta must be a finite number, got True"]),
        ({"beta": float("nan")}, ["beta must be a finite number"]),
        ({"g": -1.0}, ["g must be >= 0"]),
        ({"backends": "ensemble"}, ["backends must be a list of names, not one string"]),
        ({"backends": ("ensemble", "ensemble")}, ["backends lists ['ensemble'] more than once"]),
        ({"backends": ("gp",)}, ["backends must be a non-empty subset", "'gp'"]),
        ({"backends": ()}, ["backends must be a non-empty subset"]),
        ({"backends": (1,)}, ["backends must be a list of names"]),
        ({"seed": 10**20}, ["seed must be an integer between 0 and"]),
        ({"seed": -1}, ["seed must be an integer"]),
        ({"seed": 1.5}, ["seed must be an integer"]),
        ({"noise_sweep": (0.5, -1.0)}, ["noise_sweep must be a list of finite numbers > 0"]),
        ({"noise_sweep": "0.5"}, ["noise_sweep must be a list of finite numbers > 0"]),
        ({"noise_sweep": (True,)}, ["noise_sweep must be a list of finite numbers > 0"]),
        ({"noise_sweep": (float("inf"),)}, ["noise_sweep must be a list"]),
        ({"sweep_backend": "bnn", "backends": ("ensemble",)}, ["sweep_backend must be one of"]),
        ({"sweep_backend": 3}, ["sweep_backend must be one of"]),
        ({"quick": "yes"}, ["quick must be true or false"]),
        ({"n_draws": 1}, ["n_draws must be an integer >= 2"]),
        ({"oracle_sigma": 0}, ["oracle_sigma must be a finite number > 0"]),
        ({"epochs": 2.5}, ["epochs must be an integer"]),
        ({"steps": float("inf")}, ["steps must be an integer >= 1, got inf"]),
        ({"warmup": 0}, ["warmup must be an integer >= 1"]),
        ({"n_test": 1}, ["n_test must be an integer >= 2"]),
    ],
)
def test_compare_setting_refused(settings, words):
    with pytest.raises(ValueError) as err:
        CompareConfig(**settings).validate()
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_compare_settings_that_are_fine_pass():
    cfg = CompareConfig(backends=["last_layer"], noise_sweep=[1, 2.5], seed=2**63 - 1).validate()
    assert cfg.backends == ("last_layer",) and cfg.noise_sweep == (1.0, 2.5)
    assert CompareConfig(noise_sweep=()).validate().swept_backend is None


# -- 1. settings of the exact workflow (library) ------------------------------------------
@pytest.mark.parametrize(
    "settings, words",
    [
        ({"L": 5}, ["L must be even"]),
        ({"steps": 5, "thin": 10}, ["steps (5) must be at least thin (10)"]),
        ({"out": "/proc/x/y"}, ["out '/proc/x/y' cannot be written"]),
        ({"step_size": True}, ["step_size must be a finite number > 0"]),
        ({"step_size": "1.0"}, ["step_size must be a finite number > 0"]),
        ({"record_positions": "no"}, ["record_positions must be true or false"]),
        ({"chains": 1}, ["chains must be an integer >= 2, got 1"]),
        ({"seed": 2**64}, ["seed must be an integer between"]),
        ({"out": 5}, ["out must be a folder name"]),
    ],
)
def test_exact_setting_refused(settings, words):
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        ExactConfig(**settings).validate()
    assert time.perf_counter() - start < 5
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_exact_out_that_is_a_file_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        ExactConfig(out=f).validate()


# -- 1. TOML files -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, words",
    [
        ("steps = 10\n[compare]\nthin = 2\n", ["both a [compare] table", "(steps)"]),
        ("steps = \n", ["is not valid TOML"]),
        ("typo = 1\n", ["unknown setting(s)", "typo"]),
        ("compare = 3\n", ["'compare' must be a table"]),
    ],
)
def test_toml_layout_refused(tmp_path, text, words):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        read_toml(path)
    for w in words:
        assert w in str(err.value)


def _cli(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "toml, extra, words",
    [
        ('quick = true\nrule = "simpsons"\n', [], ["rule (in ", "must be one of"]),
        ('quick = true\nbackends = "ensemble"\n', [], ["backends (in ", "not one string"]),
        ("quick = true\nbeta = true\n", [], ["beta (in ", "got True"]),
        ('quick = true\nstep_size = "0.1"\n', [], ["step_size (in ", "'0.1'"]),
        ("quick = true\nout = 5\n", [], ["out (in ", "folder name"]),
        ("quick = true\nmember_steps = 1\n", [], ["member_steps (in ", "at least thin"]),
        ("quick = true\nthin = 5\n", ["--steps", "3"], ["--steps (3) must be at least thin (in"]),
        ("quick = true\n", ["--chains", "1"], ["--chains must be an integer >= 2"]),
    ],
)
def test_toml_settings_named_as_written(tmp_path, capsys, toml, extra, words):
    path = tmp_path / "run.toml"
    path.write_text(toml)
    start = time.perf_counter()
    out = [] if "out =" in toml else ["--out", str(tmp_path / "r")]
    code, err = _cli(["compare", "--config", str(path), *out, *extra, "--no-progress"], capsys)
    assert time.perf_counter() - start < 5
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "r").exists()


def test_missing_toml_file(tmp_path, capsys):
    code, err = _cli(["compare", "--config", str(tmp_path / "no.toml")], capsys)
    assert code == 2 and "cannot read the settings file" in err


# -- 1. the command line -------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, words",
    [
        (["exact", "--L", "5"], ["--L must be even"]),
        (["exact", "--out", "/proc/x/y"], ["--out '/proc/x/y' cannot be written"]),
        (["exact", "--seed", "99999999999999999999"], ["--seed must be an integer between"]),
        (["exact", "--steps", "3", "--thin", "5"], ["--steps (3) must be at least --thin (5)"]),
        (["exact", "--step-size", "-1"], ["--step-size must be a finite number > 0"]),
        (["exact", "--warmup", "-1"], ["--warmup must be an integer >= 0"]),
        (["compare", "--backends", "ensemble,ensemble"], ["--backends lists ['ensemble']"]),
        (["compare", "--backends", ","], ["--backends must be a non-empty subset"]),
        (["compare", "--backends", "gp"], ["--backends must be a non-empty subset", "'gp'"]),
        (["compare", "--quick", "--chains", "1"], ["--chains must be an integer >= 2"]),
        (["compare", "--quick", "--steps", "1"], ["--steps (1) must be at least thin (2)"]),
        (["compare", "--L", "7"], ["--L must be even"]),
        (["compare", "--seed", "-3"], ["--seed must be an integer"]),
        (["compare", "--out", "/proc/x/y"], ["--out '/proc/x/y' cannot be written"]),
    ],
)
def test_command_line_refused_before_work(args, words, capsys):
    start = time.perf_counter()
    code, err = _cli([*args, "--no-progress"], capsys)
    elapsed = time.perf_counter() - start
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)
    assert elapsed < 5, elapsed


@pytest.mark.parametrize(
    "args, words",
    [
        (["exact", "--beta", "inf"], ["must be a finite number"]),
        (["exact", "--steps", "abc"], ["invalid int value"]),
        (["compare", "--chains", "x"], ["invalid int value"]),
    ],
)
def test_argparse_errors_exit_2(args, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and all(w in err for w in words)


# -- 2. output folders ---------------------------------------------------------------------
def _filled(path: Path, **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name.replace("_", ".")).write_text(text)
    return path


@pytest.mark.parametrize(
    "command, files, overwrite, words",
    [
        ("exact", {"exact_nc": "old"}, False, ["is not empty", "--overwrite"]),
        ("compare", {"report_html": "old"}, False, ["is not empty", "--overwrite"]),
        ("exact", {"notes_txt": "mine"}, True, ["files a uqmcmc run does not write"]),
        (
            "exact",
            {"exact_nc": "ref", "manifest_json": '{"command": "compare"}'},
            True,
            ["holds the report of 'uqmcmc compare'", "will not replace it"],
        ),
    ],
)
def test_used_folder_refused(tmp_path, capsys, command, files, overwrite, words):
    out = _filled(tmp_path / "out", **files)
    before = {p.name: p.read_text() for p in out.iterdir()}
    args = [command, "--out", str(out), "--no-progress"] + (["--overwrite"] if overwrite else [])
    if command == "compare":
        args += ["--quick", "--backends", "last_layer"]
    start = time.perf_counter()
    code, err = _cli(args, capsys)
    assert time.perf_counter() - start < 5
    assert code == 2, err
    for w in words:
        assert w in err, (w, err)
    assert {p.name: p.read_text() for p in out.iterdir()} == before  # untouched


def test_staged_folder_failure_keeps_old_folder_and_partial(tmp_path):
    out = _filled(tmp_path / "out", exact_nc="old", manifest_json='{"command": "demo"}')
    folder = StagedFolder(out, command="demo", settings={"a": 1}, seed=4, overwrite=True)
    with pytest.raises(RuntimeError) as err:
        with folder as tmp:
            folder.timings["first"] = 0.5
            folder.current = "second"
            (tmp / "part.csv").write_text("1\n")
            raise RuntimeError("boom")
    assert (out / "exact.nc").read_text() == "old"  # the old folder as it was
    kept = tmp_path / "out.incomplete"
    manifest = json.loads((kept / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["seed"] == 4
    assert manifest["stages"] == {
        "first": {"status": "done", "seconds": 0.5},
        "second": {"status": "failed", "seconds": None},
    }
    assert "out.incomplete" in err.value.uqmcmc_kept and "unchanged" in err.value.uqmcmc_kept
    assert not list(tmp_path.glob(".out.partial-*"))


def test_staged_folder_interrupt_with_nothing_written(tmp_path):
    folder = StagedFolder(tmp_path / "out", command="demo", settings={}, seed=0)
    with pytest.raises(KeyboardInterrupt) as err:
        with folder:
            raise KeyboardInterrupt
    assert err.value.uqmcmc_kept.startswith("interrupted; nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_saved_backend_records_settings_and_seed(tmp_path):
    with io.provenance(command="compare", seed=7, settings={"epochs": 3}):
        d = io.save_state(tmp_path / "b", {"w": np.ones(2)}, {"kind": "Demo"})
    _, meta = io.load_state(d, "Demo")
    assert meta["provenance"] == {"command": "compare", "seed": 7, "settings": {"epochs": 3}}


@pytest.mark.slow
def test_exact_writes_manifest_and_overwrites_only_when_told(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["exact", "--L", "4", "--chains", "2", "--steps", "20", "--warmup", "0", "--thin",
            "1", "--out", str(out), "--no-progress", "--seed", "5"]  # fmt: skip
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "exact" and manifest["seed"] == 5
    assert manifest["settings"]["steps"] == 20 and "jax" in manifest["versions"]
    assert manifest["stages"]["chains"]["status"] == "done"
    import hashlib

    digest = hashlib.sha256((out / "exact.nc").read_bytes()).hexdigest()
    assert manifest["files"] == {"exact.nc": digest}
    capsys.readouterr()
    assert main(args) == 2 and "is not empty" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no sibling left behind


# -- 3. impossible predictions -------------------------------------------------------------
GAUSS = Gaussian(jnp.zeros(2), jnp.eye(2))


class NegativeBeyondOne:
    """The exact gradient of a 2-D standard Gaussian, whose epistemic variance of Delta S is
    claimed to be -4 wherever a node of the move has x_0 > 1 (an impossible prediction)."""

    def predict_mean_var(self, x):
        return x, jnp.zeros_like(x)

    def predict_draws(self, key, x, n):
        return jnp.broadcast_to(x, (n, *x.shape))

    def predict_linear(self, x, weights):
        return x, jnp.where(jnp.any(x[..., 0] > 1.0), -4.0, 0.0)


def test_negative_variance_rejects_and_is_counted():
    x, x_new = NoisyState(jnp.zeros(2), Cache()), NoisyState(jnp.ones(2), Cache())
    for var in (-4.0, jnp.nan, jnp.inf):
        est = DeltaEstimate(jnp.asarray(-1.0), jnp.asarray(var), jnp.asarray(True))
        state, info = metropolis_step(jax.random.key(0), x, x_new, est, CeperleyDewing())
        assert not bool(info.is_accepted) and bool(info.nonfinite), var
        assert float(info.acceptance_rate) == 0.0 and state.position.tolist() == [0.0, 0.0]


@pytest.mark.slow
def test_negative_variance_does_not_raise_acceptance():
    """Moves whose Delta S variance is claimed negative (x_0 > 1) are rejected, so the chain
    samples the standard Gaussian truncated to x_0 <= 1: E[x_0] = -phi(1) / Phi(1) = -0.2876.
    Without the rejection the Ceperley-Dewing penalty is -2 there, acceptance into x_0 > 1
    grows e^2-fold and E[x_0] comes out near +0.3: dozens of MCSE away."""
    from scipy.stats import norm

    est = GradientDelta(NegativeBeyondOne(), rule="simpson", mode="mean")
    idata = run_chains(
        rmh(est, 1.2, "ceperley-dewing"), 0, jnp.zeros((8, 2)), 3000, warmup=200,
        observables=lambda x: {"x0": x[0]}, progress=False,
    )  # fmt: skip
    post = _arviz.group(idata, "posterior")
    s = _arviz.summarize(post["x0"].values)
    expected = -norm.pdf(1.0) / norm.cdf(1.0)
    assert abs(s["mean"] - expected) < 5 * s["mcse"], (s["mean"], s["mcse"], expected)
    assert float(post["x0"].max()) <= 1.0
    nonfinite = _arviz.group(idata, "sample_stats")["nonfinite"]
    assert int(nonfinite.sum()) > 0  # the rejected moves are counted


class WrongVariance:
    def predict_mean_var(self, x):
        return x, jnp.ones(x.shape[:-1])

    def predict_draws(self, key, x, n):
        return jnp.broadcast_to(x, (n, *x.shape))


class WrongDraws:
    def predict_mean_var(self, x):
        return x, jnp.ones_like(x)

    def predict_draws(self, key, x, n):
        return x + jax.random.normal(key, (n, 1))  # one value per draw for the whole batch


class DrawsIgnoreBatch:
    def predict_mean_var(self, x):
        return x, jnp.ones_like(x)

    def predict_draws(self, key, x, n):
        return jax.random.normal(key, (n, 2))


@pytest.mark.parametrize(
    "backend, mode, words",
    [
        (WrongVariance(), "mean", ["WrongVariance.predict_mean_var", "variance has shape ()"]),
        (WrongDraws(), "draws", ["WrongDraws.predict_draws", "must have shape (2, 3, 2)"]),
        (DrawsIgnoreBatch(), "draws", ["DrawsIgnoreBatch.predict_draws", "(2, 3, 2)"]),
    ],
)
def test_wrong_shapes_refused_when_the_kernel_starts(backend, mode, words):
    est = GradientDelta(backend, mode=mode, n_draws=4 if mode == "draws" else None)
    with pytest.raises(ValueError) as err:
        mala(est, 0.1).init(jnp.zeros(2))
    for w in words:
        assert w in str(err.value), (w, str(err.value))


class NaNBeyond:
    """Action NaN where x_0 > 1, gradient inf where x_1 > 1."""

    def action(self, x):
        return jnp.where(x[0] > 1, jnp.nan, 0.5 * jnp.sum(x * x))

    def grad(self, x):
        return jnp.where(x[1] > 1, jnp.inf, x)


@pytest.mark.parametrize(
    "make, start, words",
    [
        (lambda: rmh(ExactDelta(NaNBeyond()), 1.0), [2.0, 0.0], ["non-finite action"]),
        (lambda: mala(ExactDelta(NaNBeyond()), 0.1), [0.0, 2.0], ["non-finite gradient"]),
        (lambda: cb(Phi4(4, 0.5, 1.0)), np.full((4, 4), 1e30), ["non-finite action"]),
    ],
)
def test_start_with_nonfinite_action_or_gradient_refused(make, start, words):
    with pytest.raises(ValueError) as err:
        make().init(jnp.asarray(start, dtype=float))
    for w in words:
        assert w in str(err.value)


def test_start_refused_inside_run_chains():
    """run_chains initialises its chains under jit: the message reaches the caller inside
    JAX's runtime error (the driver would have to check eagerly for a bare ValueError)."""
    with pytest.raises(Exception, match="non-finite action"):
        run_chains(rmh(ExactDelta(NaNBeyond()), 1.0), 0, jnp.array([[0.0, 0.0], [2.0, 0.0]]),
                   2, progress=False)  # fmt: skip


# -- 4. model files ------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    return io.save_state(tmp_path / "m", {"w": np.ones((2, 3))}, {"kind": "Demo"})


def _edit_meta(path: Path, **changes):
    meta = json.loads((path / io.META_FILE).read_text())
    meta.update(changes)
    (path / io.META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, error, words",
    [
        ("truncate", ValueError, ["arrays.npz", "damaged or truncated"]),
        ("empty_npz", ValueError, ["arrays.npz", "damaged or truncated"]),
        ("version_negative", ValueError, ["meta.json", "format_version must be an integer >= 1"]),
        ("version_string", ValueError, ["format_version must be an integer"]),
        ("version_future", ValueError, ["format_version 99", "reads up to"]),
        ("meta_list", ValueError, ["meta.json", "must hold a JSON object, got a list"]),
        ("meta_garbage", ValueError, ["meta.json", "is not valid JSON"]),
        ("kind", ValueError, ["holds a 'Other'", "expected a 'Demo'"]),
        ("arrays_field", ValueError, ["meta.json", "field 'arrays'"]),
        ("shape", ValueError, ["arrays.npz", "metadata says"]),
        ("nan", ValueError, ["arrays.npz", "non-finite values"]),
        ("object", ValueError, ["arrays.npz", "damaged or truncated"]),
        ("no_npz", FileNotFoundError, ["missing arrays.npz"]),
    ],
)
def test_damaged_model_file_named(saved, damage, error, words):
    npz = saved / io.ARRAYS_FILE
    if damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:100])
    elif damage == "empty_npz":
        npz.write_bytes(b"")
    elif damage == "version_negative":
        _edit_meta(saved, format_version=-7)
    elif damage == "version_string":
        _edit_meta(saved, format_version="1")
    elif damage == "version_future":
        _edit_meta(saved, format_version=99)
    elif damage == "meta_list":
        (saved / io.META_FILE).write_text("[1, 2]")
    elif damage == "meta_garbage":
        (saved / io.META_FILE).write_text("{not json")
    elif damage == "kind":
        _edit_meta(saved, kind="Other")
    elif damage == "arrays_field":
        _edit_meta(saved, arrays={"w": {"shape": "2x3", "dtype": "float64"}})
    elif damage == "shape":
        _edit_meta(saved, arrays={"w": {"shape": [3, 2], "dtype": "float64"}})
    elif damage == "nan":
        np.savez(npz, w=np.full((2, 3), np.nan))
    elif damage == "object":
        np.savez(npz, w=np.array([{"a": 1}, None], dtype=object))
    elif damage == "no_npz":
        npz.unlink()
    with pytest.raises(error) as err:
        io.load_state(saved, "Demo")
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_no_pickle_and_no_imports_from_files(tmp_path):
    with pytest.raises(ValueError, match="non-numeric dtype"):
        io.save_state(tmp_path, {"w": np.array([None], dtype=object)}, {"kind": "Demo"})
    with pytest.raises(ValueError, match="is not one of uqmcmc's networks"):
        io.resolve_class("os.system")


def _last_layer(tmp_path):
    from flax import nnx

    from uqmcmc.nets.mlp import MLP
    from uqmcmc.uq.last_layer import BayesianLastLayer

    spec = io.ModelSpec.of(MLP, {"in_features": 2, "hidden": [3]})
    arrays = io.state_arrays(spec.build(nnx.Rngs(0)), "model/")
    arrays.update({"posterior/mean": np.zeros(4), "posterior/cov": np.eye(4),
                   "posterior/factor": np.eye(4)})  # fmt: skip
    meta = {"kind": BayesianLastLayer.kind, "model": spec.to_json(), "fixed_alpha": None,
            "fixed_beta": None,
            "posterior": {"alpha": 1.0, "beta": 2.0, "log_evidence": 0.0,
                          "gamma": 1.0}}  # fmt: skip
    return BayesianLastLayer, arrays, meta


@pytest.mark.parametrize(
    "edit, words",
    [
        (None, []),
        ({"posterior": {"alpha": 1.0, "beta": -2.0, "log_evidence": 0.0, "gamma": 1.0}},
         ["posterior.beta must be a finite number > 0", "meta.json"]),
        ({"posterior": {"alpha": 0.0, "beta": 2.0, "log_evidence": 0.0, "gamma": 1.0}},
         ["posterior.alpha must be a finite number > 0"]),
        ({"fixed_beta": -1.0}, ["fixed_beta must be a finite number > 0"]),
        ({"posterior": [1, 2]}, ["field 'posterior' must hold"]),
        ("negative_cov", ["posterior/cov must be symmetric positive definite"]),
    ],
)  # fmt: skip
def test_last_layer_precisions_checked_on_load(tmp_path, edit, words):
    cls, arrays, meta = _last_layer(tmp_path)
    if edit == "negative_cov":
        arrays["posterior/cov"] = -np.eye(4)
    elif edit is not None:
        meta.update(edit)
    path = io.save_state(tmp_path / "ll", arrays, meta)
    if not words:
        _, var = cls.load(path).predict_mean_var(jnp.zeros((1, 2)))
        assert float(var.min()) > 0
        return
    with pytest.raises(ValueError) as err:
        cls.load(path)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


# -- Ctrl-C and the command as run from a shell --------------------------------------------
#: Runs ``uqmcmc.cli`` as ``python -m`` does, with SIGINT raising KeyboardInterrupt as in a
#: command started from a terminal: a test run started in the background of a
#: non-interactive shell ignores SIGINT, and a child inherits that (without a fork-time hook,
#: which JAX's threads make unsafe).
_AS_FROM_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'uqmcmc'; runpy.run_module('uqmcmc.cli', run_name='__main__', alter_sys=True)"
)


def _command(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _AS_FROM_A_TERMINAL, *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


@pytest.mark.slow
def test_unwritable_out_fails_before_sampling_without_traceback():
    start = time.perf_counter()
    proc = _command("exact", "--out", "/proc/x/y", "--no-progress")
    _, err = proc.communicate(timeout=120)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2 and "Traceback" not in err
    assert "--out '/proc/x/y' cannot be written" in err
    assert elapsed < 60, elapsed  # the imports; the check itself is instant


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_exits_promptly(tmp_path):
    out = tmp_path / "run"
    proc = _command("exact", "--L", "4", "--chains", "2", "--steps", "100000000", "--out",
                    str(out), "--no-progress")  # fmt: skip
    # wait until the chains run (their first checkpoint is written), however slow the imports
    # and the compilation are on a loaded machine
    deadline = time.perf_counter() + 240
    while not list(tmp_path.glob(".run.partial-*/checkpoints/chains/state.npz")):
        assert proc.poll() is None and time.perf_counter() < deadline, "the chains never started"
        time.sleep(0.5)
    time.sleep(2)
    assert proc.poll() is None
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    waited = time.perf_counter() - sent
    assert proc.returncode != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    # the chains' checkpoint is kept, and the line says how to continue
    assert len(lines) == 1 and "interrupted during chains" in lines[0], lines
    assert f"resume: uqmcmc exact --resume {out}.incomplete" in lines[0], lines
    assert not out.exists() and (tmp_path / "run.incomplete" / "checkpoints").is_dir()
    assert waited < 10, waited
