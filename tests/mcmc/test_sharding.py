"""Chains split over 4 simulated CPU devices: bit-identical to one device, really sharded.

``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before JAX is imported, so
the runs happen in a subprocess (:data:`SCRIPT`) that writes every run's arrays to an ``.npz``
file; the tests compare them here.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from uqmcmc.mcmc.sharding import chain_mesh, usable_count

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import blackjax, jax, jax.numpy as jnp, numpy as np
    from uqmcmc import _arviz
    from uqmcmc.mcmc import checkerboard, run_chains
    from uqmcmc.mcmc.sharding import shard_members
    from uqmcmc.nets import MLP
    from uqmcmc.targets import Phi4, logdensity_fn
    from uqmcmc.uq.members import Stacked, init_members, member_apply

    from uqmcmc._compile_cache import enable
    enable()  # UQMCMC_CACHE_DIR: the test session's folder
    out, arrays, info = sys.argv[1], {}, {"device_count": jax.device_count()}
    target = Phi4(4, 0.5, 1.0)
    runs = {
        "checkerboard": lambda: dict(algorithm=checkerboard(target, 1.0)),
        "mala_tuned": lambda: dict(
            algorithm=lambda eps: blackjax.mala(logdensity_fn(target), eps),
            step_size=0.1, target_acceptance=0.6),
    }
    def run(name, n_chains, devices):
        idata, state = run_chains(
            key=7, initial_positions=jnp.zeros((n_chains, 4, 4)), num_steps=60, warmup=30,
            thin=2, target=target, num_chunks=3, progress=False, return_state=True,
            devices=devices, **runs[name]())
        for group in ("posterior", "sample_stats"):
            ds = _arviz.group(idata, group)
            for var in ds.data_vars:
                arrays[f"{name}/{n_chains}/{devices}/{group}/{var}"] = ds[var].values
        attrs = _arviz.attrs(idata)
        info[f"{name}/{n_chains}/{devices}"] = {
            "num_devices": attrs["num_devices"],
            "step_size": attrs.get("step_size"),
            "shards": len(state.position.addressable_shards),
            "shard_shape": list(state.position.addressable_shards[0].data.shape),
            "spec": str(getattr(state.position.sharding, "spec", "")),
        }
    for name in runs:
        for devices in (1, None):
            run(name, 8, devices)
    for n_chains in (6, 7):  # 3 of the 4 devices; 1
        for devices in (1, None):
            run("checkerboard", n_chains, devices)

    _, eval_def, state = init_members(lambda r: MLP(3, (8,), rngs=r), jax.random.key(0), 4)
    x = jax.random.normal(jax.random.key(1), (5, 3))
    apply = jax.jit(lambda s, x: member_apply(Stacked(eval_def, s), lambda m, x: m(x), x))
    sharded = shard_members(state)
    arrays["members/one"] = np.asarray(apply(state, x))
    arrays["members/sharded"] = np.asarray(apply(sharded, x))
    leaf = jax.tree.leaves(sharded)[0]
    info["members"] = {"devices": len(leaf.sharding.device_set)}

    from uqmcmc.nets import RCNN
    from uqmcmc.uq.ensemble import DeepEnsemble
    xs = jax.random.normal(jax.random.key(2), (12, 4, 4))
    ens = DeepEnsemble(RCNN, {"channels": 4, "depth": 0}, n_members=4)
    ens = ens.fit(xs, jax.vmap(jax.grad(target.action))(xs), key=0, epochs=1, progress=False)
    def predictions(tag):
        mean, var = ens.predict_mean_var(xs[:3])
        arrays[f"ensemble/{tag}/mean"], arrays[f"ensemble/{tag}/var"] = mean, var
        arrays[f"ensemble/{tag}/member"] = ens.predict_member(2, xs[:3])
        arrays[f"ensemble/{tag}/draws"] = ens.predict_draws(jax.random.key(3), xs[:3], 5)
    predictions("one")
    ens.shard()
    predictions("sharded")
    info["ensemble"] = {"devices": len(jax.tree.leaves(ens.members.state)[0].sharding.device_set)}
    np.savez(out + ".npz", **arrays)
    with open(out + ".json", "w") as f:
        json.dump(info, f)
    """
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sharding") / "runs")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, out],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    with np.load(out + ".npz") as data:
        arrays = dict(data)
    return arrays, json.loads(Path(out + ".json").read_text())


def _pairs(arrays, name, n_chains):
    one = f"{name}/{n_chains}/1/"
    keys = sorted(k for k in arrays if k.startswith(one))
    assert keys
    return [(k, arrays[k], arrays[k.replace(one, f"{name}/{n_chains}/None/")]) for k in keys]


@pytest.mark.parametrize("name", ["checkerboard", "mala_tuned"])
def test_four_devices_bit_identical_to_one(runs, name):
    """Checkerboard: bit-identical. Tuned MALA: the same accept/reject decisions and values
    equal to float32 round-off (newer XLA (jax 0.12) sums a chain's lattice differently for
    different per-device batch sizes even at L = 4: last-bit differences, 5e-6 at most)."""
    arrays, info = runs
    assert info["device_count"] == 4
    for key, one, four in _pairs(arrays, name, 8):
        if name == "checkerboard" or key.endswith("is_accepted"):
            np.testing.assert_array_equal(one, four, err_msg=key)
        else:
            np.testing.assert_allclose(one, four, rtol=1e-4, atol=1e-4, err_msg=key)
    step_one, step_four = (info[f"{name}/8/{d}"]["step_size"] for d in ("1", "None"))
    if step_one is None:  # no tuning (checkerboard)
        assert step_four is None
    else:
        assert step_four == pytest.approx(step_one, rel=1e-5)
    assert any(k.endswith("sample_stats/acceptance_rate") for k, _, _ in _pairs(arrays, name, 8))


def test_chain_axis_is_sharded(runs):
    _, info = runs
    sharded, single = info["checkerboard/8/None"], info["checkerboard/8/1"]
    assert sharded["num_devices"] == 4 and sharded["shards"] == 4
    assert sharded["shard_shape"] == [2, 4, 4] and "chains" in sharded["spec"]
    assert single["num_devices"] == 1 and single["shards"] == 1


@pytest.mark.parametrize(("n_chains", "devices"), [(6, 3), (7, 1)])
def test_indivisible_chains_use_fewer_devices(runs, n_chains, devices):
    arrays, info = runs
    run = info[f"checkerboard/{n_chains}/None"]
    assert run["num_devices"] == devices and run["shards"] == devices
    for key, one, many in _pairs(arrays, "checkerboard", n_chains):
        np.testing.assert_array_equal(one, many, err_msg=key)


def test_members_sharded_predict_the_same(runs):
    arrays, info = runs
    assert info["members"]["devices"] == 4
    np.testing.assert_allclose(arrays["members/sharded"], arrays["members/one"], rtol=1e-6)


def test_deep_ensemble_sharded_predicts_the_same(runs):
    arrays, info = runs
    assert info["ensemble"]["devices"] == 4
    for what in ("mean", "var", "member", "draws"):
        one, sharded = arrays[f"ensemble/one/{what}"], arrays[f"ensemble/sharded/{what}"]
        np.testing.assert_allclose(sharded, one, rtol=1e-5, atol=1e-6, err_msg=what)


def test_mesh_helpers_on_this_process():
    assert [usable_count(n, 4) for n in (8, 6, 7, 1)] == [4, 3, 1, 1]
    assert chain_mesh(8, devices=1) is None
    with pytest.raises(ValueError, match="devices"):
        chain_mesh(8, devices=0)
