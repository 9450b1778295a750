"""Training loop, stacked members, datasets and the no-pickle save/load helpers."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _standins import reference_point
from flax import nnx

from uqmcmc import _arviz
from uqmcmc.nets import MLP
from uqmcmc.targets import Phi4
from uqmcmc.uq import io
from uqmcmc.uq.data import gap_regression
from uqmcmc.uq.losses import GaussianHead
from uqmcmc.uq.members import init_members, member_apply, train_members
from uqmcmc.uq.training import cosine_adam, train
from uqmcmc.workflows.training_data import make_dataset


def _mlp(rngs, dropout=0.0):
    return MLP(1, (16, 16), dropout=dropout, rngs=rngs)


# -- training loop ------------------------------------------------------------------------
def test_train_fits_and_records_history():
    x, y = gap_regression(0, 64)
    net, hist = train(
        _mlp(nnx.Rngs(0)), x, y, key=jax.random.key(1), epochs=150,
        optimizer=cosine_adam(1e-2), validation=(x[:16], y[:16]), progress=False,
    )  # fmt: skip
    assert hist["train_loss"].shape == (150,) and hist["val_loss"].shape == (150,)
    assert hist["epochs"] == 150 and hist["best_epoch"] is None
    rmse = float(jnp.sqrt(jnp.mean((net(x) - y) ** 2)))
    assert rmse < 0.1, rmse  # sin(3x) on [-1, 1] has rms ~0.7


@pytest.mark.slow
def test_gaussian_nll_learns_the_noise_level():
    # heteroscedastic noise: sigma = 0.05 for x < 0 and 0.3 for x > 0
    k1, k2 = jax.random.split(jax.random.key(3))
    x = jax.random.uniform(k1, (600, 1), minval=-1, maxval=1)
    sigma = jnp.where(x[:, 0] < 0, 0.05, 0.3)
    y = jnp.sin(3 * x[:, 0]) + sigma * jax.random.normal(k2, (600,))
    net, hist = train(
        _mlp(nnx.Rngs(0)), x, y, key=jax.random.key(4), epochs=150, batch_size=64,
        optimizer=cosine_adam(1e-2), loss="gaussian_nll", progress=False,
    )  # fmt: skip
    assert isinstance(net, GaussianHead) and hist["loss"] == "gaussian_nll"
    _, var = net.mean_var(jnp.array([[-0.6], [-0.4], [0.4], [0.6]]))
    noise = y - jnp.sin(3 * x[:, 0])
    drawn = np.array(
        [float(jnp.std(noise[x[:, 0] < 0]))] * 2 + [float(jnp.std(noise[x[:, 0] > 0]))] * 2
    )
    rel = np.asarray(jnp.sqrt(var)) / drawn - 1
    print("NLL variance head: relative error of sigma", np.round(rel, 3))
    # ~300 points per side; the mean soaks up a little of the small noise (weight 1/var)
    assert np.all(np.abs(rel) < 0.2), rel


def test_early_stopping_returns_the_best_epoch():
    x, y = gap_regression(1, 48)
    # a tiny noisy validation set on which long training overfits
    xv, yv = x[:4], y[:4] + 0.3
    net, hist = train(
        _mlp(nnx.Rngs(0)), x, y, key=jax.random.key(2), epochs=300,
        optimizer=optax_sgd(), validation=(xv, yv), patience=5, progress=False,
    )  # fmt: skip
    best = int(hist["best_epoch"])
    assert hist["epochs"] == best + 6 < 300
    val = float(jnp.mean((net(xv) - yv) ** 2))
    assert np.isclose(val, hist["val_loss"][best], rtol=1e-4)


def optax_sgd():
    import optax

    return optax.sgd(0.05)


@pytest.mark.slow
def test_train_members_differ_in_init_and_data_order():
    _, _, state = init_members(_mlp, jax.random.key(0), 3)
    kernels = state["readout"]["kernel"][...]
    assert kernels.shape == (3, 16, 1) and not jnp.allclose(kernels[0], kernels[1])
    # the same initialisation for every member: different data orders still make them differ
    x, y = gap_regression(2, 40)
    same_init = lambda rngs: _mlp(nnx.Rngs(7))  # noqa: E731
    members, hist = train_members(
        same_init, x, y, key=jax.random.key(0), n_members=2, epochs=2, progress=False
    )
    assert hist["train_loss"].shape == (2, 2)
    out = member_apply(members, lambda m, x: m(x), x)
    assert out.shape == (2, 40) and not jnp.allclose(out[0], out[1])


def test_dropout_is_trained_with_fresh_masks_and_returned_in_eval_mode():
    x, y = gap_regression(3, 32)
    net, _ = train(_mlp(nnx.Rngs(0), 0.3), x, y, key=jax.random.key(0), epochs=2, progress=False)
    assert jnp.array_equal(net(x), net(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"loss": "mae"}, "loss"),
        ({"patience": 3}, "validation"),
        ({"validation": (jnp.zeros((3, 1)),)}, "validation"),
        ({"optimizer": "adam"}, "optimizer"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, match):
    x, y = jnp.zeros((8, 1)), jnp.zeros(8)
    with pytest.raises(ValueError, match=match):
        train(_mlp(nnx.Rngs(0)), x, y, key=jax.random.key(0), progress=False, **kwargs)


def test_train_rejects_mismatched_data():
    with pytest.raises(ValueError, match="leading"):
        train(_mlp(nnx.Rngs(0)), jnp.zeros((8, 1)), jnp.zeros(7), key=0, progress=False)


# -- datasets -----------------------------------------------------------------------------
@pytest.mark.slow
def test_make_dataset_samples_the_exact_distribution():
    """Action density of the labelled fields vs the exact reference (L=8, beta=0.5, g=1)."""
    target = Phi4(8, 0.5, 1.0)
    data = make_dataset(target, 0, 400, n_test=40, n_val=40, n_chains=40, warmup=200, thin=20)
    assert (len(data.train), len(data.val), len(data.test)) == (320, 40, 40)
    for split in data:
        if isinstance(split, dict):
            continue
        assert jnp.allclose(split.grad, target.grad(split.x))
        assert jnp.allclose(split.action, target.action(split.x))
    fields = jnp.concatenate([data.train.x, data.val.x, data.test.x])
    density = np.asarray(target.action(fields)) / target.volume
    truth = reference_point(8, 0.5)["action_density"]
    mcse = _arviz.mcse(density[None, :])
    z = (density.mean() - truth["mean"]) / np.hypot(mcse, truth["err"])
    print(f"dataset action density z-score {z:.2f}")
    assert abs(z) < 4, z
    assert data.info["ess_per_field"] > 0.3


def test_make_dataset_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_test"):
        make_dataset(Phi4(4, 0.5, 1.0), 0, 10, n_test=8, n_val=2)


# -- save / load helpers ------------------------------------------------------------------
def test_save_load_state_round_trip_and_checks(tmp_path):
    arrays = {"a/w": np.arange(6.0).reshape(2, 3), "n": np.array([1, 2])}
    io.save_state(tmp_path / "s", arrays, {"kind": "Thing", "x": [1, 2]})
    loaded, meta = io.load_state(tmp_path / "s", "Thing")
    assert set(loaded) == set(arrays) and np.array_equal(loaded["a/w"], arrays["a/w"])
    assert meta["x"] == [1, 2] and meta["format_version"] == io.FORMAT_VERSION

    with pytest.raises(ValueError, match="expected a 'Other'"):
        io.load_state(tmp_path / "s", "Other")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        io.load_state(tmp_path / "missing", "Thing")
    with pytest.raises(ValueError, match="non-numeric"):
        io.save_state(tmp_path / "o", {"o": np.array([object()])}, {"kind": "Thing"})
    with pytest.raises(ValueError, match="kind"):
        io.save_state(tmp_path / "o", {}, {})
    # metadata and arrays that disagree (a tampered or truncated file) fail clearly
    meta_path = tmp_path / "s" / io.META_FILE
    meta["arrays"]["a/w"]["shape"] = [3, 2]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="metadata says"):
        io.load_state(tmp_path / "s", "Thing")
    meta["format_version"] = io.FORMAT_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format_version"):
        io.load_state(tmp_path / "s", "Thing")
    (tmp_path / "s" / io.ARRAYS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="arrays.npz"):
        io.load_state(tmp_path / "s", "Thing")


def test_fill_state_checks_names_and_shapes():
    net = _mlp(nnx.Rngs(0))
    arrays = io.state_arrays(net, "m/")
    assert "m/readout/kernel" in arrays and not any("rngs" in k for k in arrays)
    other = MLP(1, (16, 8), rngs=nnx.Rngs(1))
    with pytest.raises(ValueError, match="shape"):
        io.fill_state(nnx.state(other), arrays, "m/")
    with pytest.raises(ValueError, match="lack"):
        io.fill_state(nnx.state(net), {k: v for k, v in arrays.items() if "bias" not in k}, "m/")
    with pytest.raises(ValueError, match="does not have"):
        io.fill_state(nnx.state(net), {**arrays, "m/extra": np.zeros(1)}, "m/")


class _UserNet(nnx.Module):
    reduce = "none"
    site_axes = 0

    def __init__(self, width, *, rngs):
        self.hidden = nnx.Linear(1, width, rngs=rngs)
        self.readout = nnx.Linear(width, 1, rngs=rngs)

    def features(self, x):
        return jnp.tanh(self.hidden(x))

    def __call__(self, x):
        return self.readout(self.features(x))[..., 0]


def test_model_spec_never_imports_unknown_classes():
    spec = io.ModelSpec.of(_UserNet, {"width": 4})
    data = spec.to_json()
    with pytest.raises(ValueError, match="not one of uqmcmc's networks"):
        io.ModelSpec.from_json(data)
    assert io.ModelSpec.from_json(data, _UserNet).cls is _UserNet
    with pytest.raises(ValueError, match="saved with"):
        io.ModelSpec.from_json(data, MLP)
    with pytest.raises(ValueError, match="JSON"):
        io.ModelSpec.of(MLP, {"in_features": object()})
    io.register_module(_UserNet)
    assert io.ModelSpec.from_json(data).build(0).readout.in_features == 4
