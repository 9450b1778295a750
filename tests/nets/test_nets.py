"""Networks: shapes, periodicity, any lattice size, extensive energy and its forces."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from uqmcmc.nets import MLP, RCNN, EnergyNet, apply_readout
from uqmcmc.nets.rcnn import PeriodicConv


def test_periodic_conv_matches_flax_circular_conv():
    conv = PeriodicConv(3, 4, 3, rngs=nnx.Rngs(0))
    ref = nnx.Conv(3, 4, (3, 3), padding="CIRCULAR", rngs=nnx.Rngs(1))
    ref.kernel[...] = conv.kernel[...]
    conv.bias[...] = ref.bias[...] = jnp.arange(4.0)
    h = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
    assert jnp.allclose(conv(h), ref(h), atol=1e-5)


@pytest.mark.slow
def test_rcnn_shapes_equivariance_and_lattice_sizes():
    net = RCNN(channels=8, depth=2, kernel_size=3, dropout=0.1, rngs=nnx.Rngs(0))
    net.eval()
    phi = jax.random.normal(jax.random.key(1), (2, 3, 8, 8))
    out = net(phi)
    assert out.shape == (2, 3, 8, 8)
    assert net.features(phi).shape == (2, 3, 8, 8, 8)
    assert jnp.allclose(apply_readout(net, net.features(phi)), out)
    # translation equivariance with periodic boundaries
    shifted = net(jnp.roll(phi, (3, -2), axis=(-2, -1)))
    assert jnp.allclose(shifted, jnp.roll(out, (3, -2), axis=(-2, -1)), atol=1e-5)
    # any lattice size, and the unbatched field
    assert net(jnp.zeros((5, 12, 12))).shape == (5, 12, 12)
    assert net(phi[0, 0]).shape == (8, 8)
    assert jnp.allclose(net(phi[0, 0]), out[0, 0], atol=1e-6)


@pytest.mark.slow
def test_rcnn_dropout_only_in_train_mode():
    net = RCNN(channels=8, depth=1, dropout=0.5, rngs=nnx.Rngs(0))
    phi = jax.random.normal(jax.random.key(1), (8, 8))
    net.eval()
    assert jnp.array_equal(net(phi), net(phi))
    net.train()
    assert not jnp.allclose(net(phi), net(phi))


@pytest.mark.slow
def test_energy_net_is_extensive_and_forces_are_its_gradient():
    net = EnergyNet(channels=8, depth=1, rngs=nnx.Rngs(0))
    phi = jax.random.normal(jax.random.key(2), (3, 4, 4))
    energy = net(phi)
    assert energy.shape == (3,)
    # sum of local terms: tiling a configuration 2 x 2 quadruples the energy
    tiled = jnp.tile(phi, (1, 2, 2))
    assert jnp.allclose(net(tiled), 4 * energy, rtol=1e-4)
    # forces = jax.grad of the energy, checked against a central finite difference
    force = net.grad(phi)
    assert force.shape == phi.shape
    eps = 1e-2
    bump = jnp.zeros_like(phi).at[:, 1, 2].set(eps)
    fd = (net(phi + bump) - net(phi - bump)) / (2 * eps)
    assert jnp.allclose(fd, force[:, 1, 2], rtol=2e-2, atol=2e-3)
    # the features sum to what the readout sees
    h = net.features(phi)
    assert jnp.allclose(apply_readout(net, h), energy, rtol=1e-5)


def test_mlp_follows_the_convention():
    net = MLP(2, (8, 4), rngs=nnx.Rngs(0))
    assert net(jnp.zeros((3, 5, 2))).shape == (3, 5)
    assert net.features(jnp.zeros((3, 2))).shape == (3, 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 0},
        {"depth": -1},
        {"kernel_size": 2},
        {"stem_kernel": 4},
        {"activation": "sigmoid"},
        {"dropout": 1.0},
    ],
)
def test_rcnn_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RCNN(**kwargs, rngs=nnx.Rngs(0))
