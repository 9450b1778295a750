"""Energy networks trained on energies and forces (``loss="energy_force"``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc.nets import MLP
from uqmcmc.uq import registry
from uqmcmc.uq.last_layer import BayesianLastLayer
from uqmcmc.uq.losses import energy_force_labels

VAR = jnp.asarray((1.0, 2.0, 0.5)) ** 2


def action(x):
    return jnp.sum(0.5 * x**2 / VAR, axis=-1)


def _data(n, seed=0):
    x = jax.random.normal(jax.random.key(seed), (n, 3)) * jnp.sqrt(VAR)
    return x, action(x), x / VAR


def _grad_of_mean(backend, x):
    return jax.vmap(jax.grad(lambda z: backend.predict_mean_var(z[None])[0][0]))(x)


def test_last_layer_fits_energies_and_gradient_rows():
    """The default network's readout sees each coordinate and its square, so the Gaussian's
    action is in the last layer's span: fitted on energies and gradients (untrained trunk,
    one epoch), the posterior mean's gradient is the exact one; on 8 energies alone the same
    fit has 8 equations for 2 d + 1 + F unknowns and misses it."""
    net = {"in_features": (3,), "hidden": (8,), "quadratic": True}
    x, e, g = _data(8)
    x_test, _, g_test = _data(50, seed=1)
    both = BayesianLastLayer(MLP, net).fit(
        x, energy_force_labels(e, g), key=0, epochs=1, loss="energy_force", progress=False
    )
    err_both = float(jnp.max(jnp.abs(_grad_of_mean(both, x_test) - g_test)))
    assert err_both < 1e-2, err_both
    energies = BayesianLastLayer(MLP, net).fit(x, e, key=0, epochs=1, progress=False)
    err_e = float(jnp.max(jnp.abs(_grad_of_mean(energies, x_test) - g_test)))
    assert err_e > 10 * err_both, (err_e, err_both)


def test_a_wrong_loss_is_refused_by_the_last_layer():
    x, e, _ = _data(8)
    with pytest.raises(ValueError, match="'mse' or 'energy_force'"):
        BayesianLastLayer(MLP, {"in_features": (3,)}).fit(x, e, key=0, loss="gaussian_nll")


@pytest.mark.parametrize("name", ["ensemble", "dropout", "last_layer"])
def test_forces_settings_train_on_packed_labels_and_reload(name, tmp_path):
    """With ``BackendSettings(forces=True)`` the backends that declare ``forces`` fit the
    packed labels; the saved backend predicts as the fitted one."""
    net = registry.Network(MLP, {"in_features": (3,), "hidden": (8,), "quadratic": True})
    settings = registry.BackendSettings(n_members=2, epochs=3, network=net, forces=True)
    assert registry.get(name).forces
    x, e, g = _data(24)
    backend = registry.fit(name, settings, x, energy_force_labels(e, g), 0)
    mean, var = backend.predict_mean_var(x[:5])
    assert mean.shape == (5,) and bool(jnp.all(var >= 0))
    backend.save(tmp_path / name)
    again = registry.load(name, tmp_path / name)
    np.testing.assert_allclose(again.predict_mean_var(x[:5])[0], mean, rtol=1e-5, atol=1e-5)


def test_backends_without_forces_keep_energy_labels():
    assert not registry.get("bnn").forces and not registry.get("deep_kernel").forces
