"""Checkpoint and resume of ``run_chains`` (:mod:`uqmcmc.mcmc.checkpoint`): a run stopped
after any chunk, warm-up or sampling, and resumed gives the uninterrupted run's draws bit for
bit; a checkpoint of another run, or a damaged one, is refused with a message naming what."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc import _arviz
from uqmcmc.mcmc import (
    CeperleyDewing,
    ExactDelta,
    NoisyOracle,
    Switch,
    batched,
    checkerboard,
    mala,
    rmh,
    run_chains,
)
from uqmcmc.mcmc.adaptation import fixed_step_size
from uqmcmc.mcmc.checkpoint import STATE, Checkpoint, draws_name
from uqmcmc.mcmc.sampling_loop import LoopConfig, make_recorder, sample_chains
from uqmcmc.targets import Gaussian, Phi4
from uqmcmc.workflows import ExactConfig
from uqmcmc.workflows.exact import run_exact

checkpoint_module = importlib.import_module("uqmcmc.mcmc.checkpoint")

ROOT = Path(__file__).resolve().parents[2]
PHI4 = Phi4(4, 0.5, 1.0)
GAUSS = Gaussian(jnp.array([1.0, -2.0]), jnp.array([[1.0, 0.8], [0.8, 2.0]]))

#: Each run: 4 warm-up chunks then 4 sampling chunks (num_chunks=4).
RUNS = {
    "checkerboard": lambda: dict(
        algorithm=checkerboard(PHI4, 1.0),
        initial_positions=jnp.zeros((3, 4, 4)),
        target=PHI4,
    ),
    "mala_tuned": lambda: dict(
        algorithm=lambda eps: mala(ExactDelta(PHI4), eps),
        initial_positions=jnp.zeros((3, 4, 4)),
        target=PHI4,
        step_size=0.05,
        target_acceptance=0.6,
    ),
    "batched": lambda: dict(
        algorithm=batched(
            jnp.array([False, True]),
            lambda on: rmh(NoisyOracle(GAUSS, 1.0), 0.5, Switch(CeperleyDewing(), on)),
        ),
        initial_positions=jnp.zeros((3, 2, 2)),
        target=GAUSS,
    ),
}
SETTINGS = dict(key=11, num_steps=40, warmup=20, thin=2, num_chunks=4)


def _run(name, **kwargs):
    return run_chains(**{**RUNS[name](), **SETTINGS, "progress": False, **kwargs})


def _arrays(idata) -> dict[str, np.ndarray]:
    out = {}
    for group in ("posterior", "sample_stats"):
        ds = _arviz.group(idata, group)
        for var in ds.data_vars:
            out[f"{group}/{var}"] = ds[var].values
    return out


def assert_bit_identical(a, b):
    a, b = _arrays(a), _arrays(b)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), name


class StopAt:
    """A progress callable that records the steps it is told of and raises
    ``KeyboardInterrupt`` (as Ctrl-C would) on its ``stop``-th call."""

    def __init__(self, stop: int | None = None):
        self.stop, self.calls = stop, []

    def __call__(self, n: int) -> None:
        self.calls.append(n)
        if len(self.calls) == self.stop:
            raise KeyboardInterrupt


def _interrupted(name, folder, stop):
    meter = StopAt(stop)
    with pytest.raises(KeyboardInterrupt):
        _run(name, checkpoint=folder, progress=meter)
    return meter


def _state(folder) -> dict:
    with np.load(Path(folder) / STATE, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


@pytest.fixture(scope="module")
def whole():
    """The uninterrupted runs (no checkpoint), by name."""
    return {}


def _whole(whole, name):
    if name not in whole:
        whole[name] = _run(name)
    return whole[name]


# -- the identity ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, stop, phase, chunk",
    [
        ("checkerboard", 3, "warmup", 2),  # 3 of 4 warm-up chunks done
        ("checkerboard", 6, "sample", 1),  # the warm-up and 2 of 4 sampling chunks
        ("mala_tuned", 3, "warmup", 2),  # the tuned step size is resumed mid-adaptation
        ("mala_tuned", 4, "warmup", 3),  # the step size is final() of the restored state
        ("mala_tuned", 5, "sample", 0),
        ("batched", 6, "sample", 1),
    ],
)
def test_resumed_run_is_bit_identical(tmp_path, whole, name, stop, phase, chunk):
    folder = tmp_path / "ckpt"
    meter = _interrupted(name, folder, stop)
    state = _state(folder)
    assert (str(state["meta/phase"]), int(state["meta/chunk"])) == (phase, chunk)
    drawn = sorted(p.name for p in folder.glob("draws-*.npz"))
    assert drawn == [draws_name(i) for i in range(chunk + 1 if phase == "sample" else 0)]
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]  # no temporary file left

    again = StopAt()
    resumed = _run(name, checkpoint=folder, progress=again)
    assert_bit_identical(resumed, _whole(whole, name))
    # the resumed meter starts at the steps already done, and counts the rest
    assert again.calls[0] == sum(meter.calls)
    assert sum(again.calls) == SETTINGS["warmup"] + SETTINGS["num_steps"]
    attrs, ref = _arviz.attrs(resumed), _arviz.attrs(_whole(whole, name))
    assert attrs.get("step_size") == ref.get("step_size")


def test_a_finished_checkpoint_returns_the_run_again(tmp_path, whole):
    folder = tmp_path / "ckpt"
    first, state = _run("checkerboard", checkpoint=folder, return_state=True)
    assert_bit_identical(first, _whole(whole, "checkerboard"))
    assert int(_state(folder)["meta/chunk"]) == 3 and str(_state(folder)["meta/phase"]) == "sample"
    meter = StopAt()
    again, state_again = _run("checkerboard", checkpoint=folder, progress=meter, return_state=True)
    assert_bit_identical(again, first)
    assert meter.calls == [SETTINGS["warmup"] + SETTINGS["num_steps"]]  # nothing left to run
    np.testing.assert_array_equal(state_again.position, state.position)


def test_checkpointed_draws_live_on_disk_not_in_memory(tmp_path):
    """With a checkpoint the loop keeps no chunk in memory: it returns ONE record, read back
    from the draws files at the end, already shaped (chain, draw, ...)."""
    alg, eps = checkerboard(PHI4, 1.0), jnp.asarray(1.0)
    config = LoopConfig(warmup=4, num_draws=10, thin=1, num_chunks=3)
    record = make_recorder(PHI4.observables, (2,))
    args = (lambda _: alg, jnp.zeros((2, 4, 4)), jax.random.key(0), eps, fixed_step_size(eps))
    ckpt = Checkpoint(tmp_path, {"any": 1})
    out = sample_chains(*args, record, config, checkpoint=ckpt)
    assert isinstance(out.records, dict) and out.records["obs"]["abs_m"].shape == (2, 10)
    plain = sample_chains(*args, record, config)
    assert len(plain.records) == 3  # chunks of 4, 4, 2 draws
    np.testing.assert_array_equal(
        out.records["obs"]["abs_m"], np.concatenate([r["obs"]["abs_m"] for r in plain.records]).T
    )
    assert sorted(p.name for p in tmp_path.glob("draws-*")) == [draws_name(i) for i in range(3)]


# -- refusals ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A checkerboard checkpoint stopped in the sampling phase (copy it before changing it)."""
    folder = tmp_path_factory.mktemp("stopped") / "ckpt"
    _interrupted("checkerboard", folder, 6)
    return folder


@pytest.fixture
def copy(stopped, tmp_path):
    return Path(shutil.copytree(stopped, tmp_path / "ckpt"))


@pytest.mark.parametrize(
    "change, words",
    [
        ({"num_steps": 60}, ["num_steps differs", "checkpoint: 40, this run: 60"]),
        ({"key": 12}, ["key differs"]),
        ({"key": jax.random.key(11)}, []),  # the same key, given as a key: accepted
        ({"warmup": 24}, ["warmup differs"]),
        ({"thin": 4}, ["thin differs"]),
        ({"num_chunks": 5}, ["num_chunks differs"]),
        ({"initial_positions": jnp.zeros((4, 4, 4))}, ["num_chains differs"]),
        ({"record_positions": True}, ["records differs", "obs/position"]),
    ],
)
def test_a_resume_with_other_settings_is_refused(copy, change, words):
    before = _state(copy)
    if not words:
        _run("checkerboard", checkpoint=copy, **change)
        return
    with pytest.raises(ValueError) as err:
        _run("checkerboard", checkpoint=copy, **change)
    message = str(err.value)
    assert str(copy / STATE) in message
    for word in words:
        assert word in message
    after = _state(copy)  # a refused resume writes nothing
    assert sorted(after) == sorted(before)
    for k in before:
        assert np.array_equal(before[k], after[k], equal_nan=before[k].dtype.kind == "f"), k


@pytest.mark.parametrize(
    "damage",
    ["truncate", "garbage", "empty", "flip_byte", "pickle", "wrong_shape", "missing_leaf"],
)
def test_a_damaged_state_file_is_a_value_error_naming_it(copy, damage):
    path = copy / STATE
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "flip_byte":  # inside the stored positions: the zip CRC no longer matches
        arrays = _state(copy)
        at = data.index(arrays["tree/states/position"].tobytes()[:64]) + 10
        path.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    elif damage == "pickle":
        np.save(path.with_suffix(".npy"), np.array([object()], dtype=object), allow_pickle=True)
        os.replace(path.with_suffix(".npy"), path)
    else:
        arrays = _state(copy)
        if damage == "wrong_shape":
            arrays["tree/states/position"] = arrays["tree/states/position"][:, :2]
        else:
            del arrays["tree/adapt/log_step_size"]
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    with pytest.raises(ValueError) as err:
        _run("checkerboard", checkpoint=copy)
    assert str(path) in str(err.value)
    if damage == "wrong_shape":
        assert "tree/states/position" in str(err.value) and "(3, 2, 4)" in str(err.value)
    if damage == "missing_leaf":
        assert "lacks 'tree/adapt/log_step_size'" in str(err.value)


def test_a_damaged_or_missing_draws_file_is_a_value_error_naming_it(copy):
    path = copy / draws_name(1)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=draws_name(1)):
        _run("checkerboard", checkpoint=copy)
    path.unlink()
    with pytest.raises(ValueError, match=f"{draws_name(1)}' is missing"):
        _run("checkerboard", checkpoint=copy)


def test_no_file_needs_pickle(copy):
    files = sorted(copy.glob("*.npz"))
    assert [p.name for p in files] == [draws_name(0), draws_name(1), STATE]
    for path in files:
        with np.load(path, allow_pickle=False) as z:
            for name in z.files:
                assert not z[name].dtype.hasobject, (path, name)
        with zipfile.ZipFile(path) as zf:
            assert all(n.endswith(".npy") for n in zf.namelist())


def test_checkpoint_round_trip_keeps_keys_and_weak_types(tmp_path):
    """A PRNG-key leaf comes back as a key, a weakly typed scalar (what the compiled chunk
    carries) as a weakly typed scalar: the resumed chunk sees the same argument types."""
    live = {
        "k": jax.random.split(jax.random.key(3), 2),
        "w": jnp.asarray(0.5, jnp.float32),
        "a": 1.0,
    }
    live = jax.jit(lambda t: t)(live)
    assert live["a"].weak_type
    ckpt = Checkpoint(tmp_path, {"x": 1})
    ckpt.resume(live, {"warmup": 1, "sample": 1})
    ckpt.save("sample", 0, live, wall_time=2.0)
    saved = Checkpoint(tmp_path, {"x": 1}).resume(live, {"warmup": 1, "sample": 1})
    np.testing.assert_array_equal(
        jax.random.key_data(saved.tree["k"]), jax.random.key_data(live["k"])
    )
    assert saved.tree["a"].weak_type and not saved.tree["w"].weak_type
    with pytest.raises(ValueError, match="is not shaped like the live one"):
        ckpt.save("sample", 0, [live], wall_time=0.0)
    with pytest.raises(ValueError, match="chunk 0 of phase 'sample'"):  # no sampling chunk here
        Checkpoint(tmp_path, {"x": 1}).resume(live, {"warmup": 1, "sample": 0})
    with pytest.raises(ValueError, match="cannot be written"):
        Checkpoint(tmp_path / STATE, {})


# -- the exact workflow ------------------------------------------------------------------------
def test_exact_config_checks_the_checkpoint_folder(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="checkpoint .* exists and is not a folder"):
        ExactConfig(L=4, checkpoint=a_file).validate()
    with pytest.raises(ValueError, match="must lie outside out"):
        ExactConfig(L=4, out=tmp_path / "run", checkpoint=tmp_path / "run" / "c").validate()
    ExactConfig(L=4, out=tmp_path / "run", checkpoint=tmp_path / "c").validate()


def test_run_exact_resumes_from_its_checkpoint(tmp_path):
    settings = dict(L=4, beta=0.5, chains=2, steps=40, warmup=10, thin=2, seed=3)
    folder = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        run_exact(**settings, checkpoint=folder, progress=StopAt(25))  # 20 chunks per phase
    assert str(_state(folder)["meta/phase"]) == "sample"
    resumed = run_exact(**settings, checkpoint=folder, progress=False, out=tmp_path / "out")
    plain = run_exact(**settings, progress=False)
    assert_bit_identical(resumed.idata, plain.idata)
    assert resumed.path.exists() and (folder / STATE).exists()


# -- sharded -----------------------------------------------------------------------------------
SHARDED = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from uqmcmc import _arviz
    from uqmcmc._compile_cache import enable
    from uqmcmc.mcmc import checkerboard, run_chains
    from uqmcmc.targets import Phi4

    enable()
    folder, out = sys.argv[1], sys.argv[2]
    target = Phi4(4, 0.5, 1.0)
    calls = []
    def stop(n):
        calls.append(n)
        if len(calls) == 5:
            raise KeyboardInterrupt
    kw = dict(target=target, num_steps=20, warmup=10, num_chunks=3, key=5,
              initial_positions=jnp.zeros((4, 4, 4)))
    try:
        run_chains(checkerboard(target, 1.0), checkpoint=folder, progress=stop, devices=None, **kw)
    except KeyboardInterrupt:
        pass
    resumed, state = run_chains(checkerboard(target, 1.0), checkpoint=folder, progress=False,
                                devices=None, return_state=True, **kw)
    arrays = {}
    for group in ("posterior", "sample_stats"):
        ds = _arviz.group(resumed, group)
        for var in ds.data_vars:
            arrays[f"{group}/{var}"] = ds[var].values
    np.savez(out, **arrays)
    print(json.dumps({"devices": jax.device_count(),
                      "num_devices": _arviz.attrs(resumed)["num_devices"],
                      "shards": len(state.position.addressable_shards)}))
    """
)


def test_sharded_run_resumes_bit_identical_to_one_device(tmp_path):
    """Stopped and resumed on 2 simulated devices (states gathered to save, split again on
    load), the draws are those of an uninterrupted one-device run."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    out = tmp_path / "arrays.npz"
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED, str(tmp_path / "ckpt"), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info == {"devices": 2, "num_devices": 2, "shards": 2}
    whole = _arrays(
        run_chains(
            checkerboard(PHI4, 1.0),
            5,
            jnp.zeros((4, 4, 4)),
            20,
            warmup=10,
            num_chunks=3,
            target=PHI4,
            progress=False,
            devices=1,
        )  # fmt: skip
    )
    with np.load(out, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(whole)
        for name in whole:
            assert np.array_equal(z[name], whole[name]), name


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt here, as in a command started from a terminal (a test
    run started in the background of a shell ignores it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_write_finishes_the_file_then_interrupts(tmp_path, monkeypatch,
                                                                 sigint_raises):  # fmt: skip
    """Ctrl-C in the middle of a checkpoint archive: the file is written whole, then
    KeyboardInterrupt stops the run (before, the interruption cut the zip archive and came out
    as an unrelated ValueError from a half-closed file)."""
    real = np.savez

    def savez(f, **arrays):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
        real(f, **arrays)

    monkeypatch.setattr(checkpoint_module.np, "savez", savez)
    path = tmp_path / STATE
    with pytest.raises(KeyboardInterrupt):
        checkpoint_module._write(path, {"a": np.arange(3)})
    monkeypatch.undo()
    assert np.load(path)["a"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == [STATE]
