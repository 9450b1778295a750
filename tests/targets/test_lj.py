"""The Lennard-Jones cluster target: action against an independent float64 NumPy version,
gradient, invariances, float32 safety, the LJ13 global minimum, observables, and an exact MALA
chain checked with the virial identity (with a negative control)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import sph_harm_y

from uqmcmc._arviz import attrs as run_attrs
from uqmcmc._arviz import mcse
from uqmcmc.mcmc import ExactDelta, mala, run_chains
from uqmcmc.stats import jackknife
from uqmcmc.targets.base import check_target
from uqmcmc.targets.lj import (
    DERIVED,
    R_FLOOR,
    LJCluster,
    default_wall_radius,
    heat_capacity,
    lattice_cluster,
)

LJ13_MINIMUM = -44.326801  # Cambridge Cluster Database, icosahedral LJ13


# -- independent reference ---------------------------------------------------------------------
def potential_np(x, R_c, k):
    """U by explicit loops in float64 (no floor: used away from overlaps)."""
    x = np.asarray(x, dtype=np.float64)
    u = 0.0
    for i, j in itertools.combinations(range(len(x)), 2):
        r = np.linalg.norm(x[i] - x[j])
        u += 4.0 * (r**-12 - r**-6)
    for dist in np.linalg.norm(x - x.mean(axis=0), axis=1):
        u += k * max(0.0, dist - R_c) ** 2
    return u


def icosahedron(radius=1.0):
    """Centre plus the 12 vertices (0, ±1, ±φ) and cyclic permutations, at ``radius``."""
    phi = (1.0 + math.sqrt(5.0)) / 2.0
    v = []
    for a, b in itertools.product((-1.0, 1.0), (-phi, phi)):
        v += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    v = np.array(v)
    v *= radius / np.linalg.norm(v, axis=1, keepdims=True)
    return np.vstack([np.zeros(3), v])


def relax(target, x, steps=600, rate=0.002):
    """Plain gradient descent on U (jitted scan)."""

    @jax.jit
    def run(x):
        def body(x, _):
            return x - rate * target.temperature * target.grad(x), None

        return jax.lax.scan(body, x, None, steps)[0]

    return run(jnp.asarray(x, dtype=jnp.float32))


def random_rotation(seed, d):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


#: LJ13 in a container so small that the wall acts (one target, so one compiled program each).
WALLED = LJCluster(temperature=0.4, wall_radius=1.2, wall_strength=7.0)


@pytest.fixture(scope="module")
def configs():
    """Five warm LJ13 configurations: the lattice start shaken by 0.15."""
    return WALLED.initial_positions(jax.random.key(3), 5, jitter=0.15)


# -- fast tests --------------------------------------------------------------------------------
def test_basic_interface():
    t = LJCluster()
    check_target(t)
    assert t.shape == (13, 3) and t.n_pairs == 78
    assert t.params == {
        "target": "LJCluster",
        "N": 13,
        "d": 3,
        "temperature": 0.3,
        "wall_radius": pytest.approx(2.1880, abs=1e-4),
        "wall_strength": 25.0,
        "bond_cutoff": 1.5,
        "n_bins": 50,
        "r_max": pytest.approx(2 * 2.1880 + 0.5, abs=1e-4),
    }
    assert "LJCluster(N=13, d=3, temperature=0.3" in repr(t)
    assert LJCluster.observable_dims == {"pair_hist": ["r"]}
    assert set(LJCluster.derived_quantities) == {"heat_capacity"}
    assert DERIVED["heat_capacity"].inputs == ("energy2", "energy")
    assert default_wall_radius(13, 3) == pytest.approx(2.1880, abs=1e-4)
    assert len(t.bin_edges) == 51 and t.bin_centres[0] == pytest.approx(t.r_max / 100)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"N": 1},
        {"N": 2.5},
        {"d": 4},
        {"d": True},
        {"temperature": 0.0},
        {"temperature": float("nan")},
        {"wall_radius": -1.0},
        {"wall_strength": 0.0},
        {"bond_cutoff": float("inf")},
        {"n_bins": 0},
        {"r_max": 0.0},
    ],
)
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        LJCluster(**kwargs)


def test_rejects_wrong_shape():
    with pytest.raises(ValueError, match="trailing shape"):
        LJCluster(N=4).action(jnp.zeros((5, 3)))


def test_action_matches_float64_reference(configs):
    want = np.array([potential_np(x, 1.2, 7.0) for x in np.asarray(configs)])
    np.testing.assert_allclose(WALLED.potential(configs), want, rtol=2e-6, atol=2e-5)
    np.testing.assert_allclose(WALLED.action(configs), want / 0.4, rtol=2e-6, atol=5e-5)
    assert float(WALLED.wall_energy(configs).max()) > 0  # the wall acts
    # the dimer along its curve
    t2 = LJCluster(N=2, temperature=1.0)
    r = np.array([0.9, 1.0, 2 ** (1 / 6), 1.6, 2.0])
    dimers = np.zeros((5, 2, 3))
    dimers[:, 1, 0] = r
    np.testing.assert_allclose(t2.pair_energy(dimers), 4 * (r**-12 - r**-6), rtol=1e-5)


def test_grad_matches_finite_differences_and_autodiff(configs):
    x = np.asarray(configs[0], dtype=np.float64)
    g = np.asarray(WALLED.grad(configs))
    h = 1e-6
    fd = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        fd[idx] = (potential_np(x + e, 1.2, 7.0) - potential_np(x - e, 1.2, 7.0)) / (2 * h)
    np.testing.assert_allclose(g[0], fd / 0.4, rtol=1e-4, atol=1e-3 * np.abs(fd).max() / 0.4)
    # jitted and vmapped, it is jax.grad of the action
    auto = jax.jit(jax.vmap(jax.grad(WALLED.action)))(configs)
    np.testing.assert_allclose(g, auto, rtol=1e-5, atol=1e-4)
    # translation invariance: the forces sum to zero
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-3)


def _moved(x, d, seed):
    """x translated, rotated, reflected and permuted (stacked after x itself), the rotation and
    the permutation."""
    q = jnp.asarray(random_rotation(seed, d), dtype=x.dtype)
    perm = np.random.default_rng(seed).permutation(x.shape[0])
    flip = jnp.array([-1.0] + [1.0] * (d - 1))
    return jnp.stack([x, x + jnp.arange(1.0, d + 1.0) * 3.7, x @ q.T, x * flip, x[perm]]), q, perm


@pytest.mark.parametrize("d", [3, 2])
def test_invariances(configs, d):
    if d == 3:
        t, x = WALLED, configs[1]
    else:
        t = LJCluster(N=13, d=2, wall_radius=1.5)
        x = t.initial_positions(jax.random.key(5), 1, jitter=0.2)[0]
    ys, q, perm = _moved(x, d, seed=d)
    s, g, obs = t.action(ys), t.grad(ys), t.observables(ys)
    assert float(t.wall_energy(x)) > 0
    # float32: a translation by ~10 moves every coordinate's last bit, which r^-12 amplifies
    np.testing.assert_allclose(s, s[0], rtol=1e-4)
    for k, v in obs.items():
        np.testing.assert_allclose(
            v, jnp.broadcast_to(v[0], v.shape), rtol=1e-4, atol=1e-5, err_msg=k
        )
    for i, want in [
        (1, g[0]),
        (2, g[0] @ q.T),
        (3, g[0] * jnp.array([-1.0] + [1.0] * (d - 1))),
        (4, g[0][perm]),
    ]:
        np.testing.assert_allclose(g[i], want, rtol=1e-4, atol=1e-3, err_msg=str(i))


def test_finite_at_coincident_atoms():
    t = LJCluster(N=4)
    cases = [
        jnp.zeros((4, 3)),  # all atoms on one point (and at the centre of mass)
        jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.1, 0.0, 0.0], [0.0, 1.1, 0.0]]),
        jnp.array([[0.0, 0.0, 0.0], [1e-20, 0.0, 0.0], [9.0, 0.0, 0.0], [0.0, 1.1, 0.0]]),
    ]
    cap = 4 * (R_FLOOR**-12 - R_FLOOR**-6)
    for x in cases:
        assert np.isfinite(float(t.action(x)))
        assert bool(jnp.all(jnp.isfinite(t.grad(x))))
        assert bool(jnp.all(jnp.isfinite(jax.grad(t.action)(x))))
        for v in t.observables(x).values():
            assert bool(jnp.all(jnp.isfinite(v)))
    assert float(t.pair_energy(cases[0])) == pytest.approx(6 * cap, rel=1e-6)
    # the coincident pair exerts no force on each other; the others still push them apart
    g = t.grad(cases[1])
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


def test_icosahedral_global_minimum():
    t = LJCluster()
    x = relax(t, icosahedron(1.1))
    assert float(t.potential(x)) == pytest.approx(LJ13_MINIMUM, abs=2e-4)
    assert float(t.wall_energy(x)) == 0.0  # the wall does not touch the solid
    assert float(jnp.abs(t.grad(x)).max()) < 1e-3
    surface = np.linalg.norm(np.asarray(x - x.mean(axis=0)), axis=1)[1:]
    np.testing.assert_allclose(surface, 1.0818, atol=1e-3)
    assert surface.max() < t.wall_radius - 1.0  # an atom must rise > 1 sigma to feel it
    # 2-D: the 7-atom hexagon, U = -12.53 (the 2-D LJ7 benchmark's lowest minimum)
    t2 = LJCluster(N=7, d=2)
    hexagon = relax(t2, lattice_cluster(7, dim=2))
    assert float(t2.potential(hexagon)) == pytest.approx(-12.5349, abs=1e-3)


def _q6_sph_harm(x, cutoff):
    """Global Q6 from spherical harmonics (scipy), bonds by explicit loops."""
    x = np.asarray(x, dtype=np.float64)
    bonds = [
        x[j] - x[i]
        for i, j in itertools.combinations(range(len(x)), 2)
        if np.linalg.norm(x[j] - x[i]) < cutoff
    ]
    u = np.array(bonds) / np.linalg.norm(bonds, axis=1, keepdims=True)
    polar, azim = np.arccos(np.clip(u[:, 2], -1, 1)), np.arctan2(u[:, 1], u[:, 0])
    qlm = [sph_harm_y(6, m, polar, azim).mean() for m in range(-6, 7)]
    return math.sqrt(4 * math.pi / 13 * sum(abs(q) ** 2 for q in qlm))


def test_observables(configs):
    t = LJCluster()
    obs = t.observables(configs)
    assert set(obs) == {"energy", "energy2", "rg", "q6", "pair_hist"}
    assert obs["pair_hist"].shape == (5, 50) and obs["energy"].shape == (5,)
    np.testing.assert_allclose(obs["energy"], t.potential(configs), rtol=1e-6)
    np.testing.assert_allclose(obs["energy2"], obs["energy"] ** 2, rtol=1e-6)
    for i, x in enumerate(np.asarray(configs, dtype=np.float64)):
        y = x - x.mean(axis=0)
        assert float(obs["rg"][i]) == pytest.approx(np.sqrt((y**2).sum(axis=1).mean()), rel=1e-5)
        assert float(obs["q6"][i]) == pytest.approx(_q6_sph_harm(x, 1.5), rel=1e-4, abs=1e-5)
        r = [np.linalg.norm(x[a] - x[b]) for a, b in itertools.combinations(range(13), 2)]
        want = np.histogram(r, bins=t.bin_edges)[0] / 78
        np.testing.assert_allclose(obs["pair_hist"][i], want, atol=1e-6)
    # ideal structures: icosahedron with its 12 radial bonds only, fcc cuboctahedron
    ico = jnp.asarray(icosahedron(1.0), dtype=jnp.float32)
    assert float(LJCluster(bond_cutoff=1.02).bond_order(ico)) == pytest.approx(0.66332, abs=1e-4)
    cubo = jnp.asarray(lattice_cluster(13), dtype=jnp.float32)
    assert float(t.bond_order(cubo)) == pytest.approx(0.57452, abs=1e-4)
    assert float(LJCluster(bond_cutoff=0.5).bond_order(cubo)) == 0.0  # no bonds: zero
    # 2-D: psi6 is 1 on a triangular patch and the key says so
    t2 = LJCluster(N=7, d=2)
    obs2 = t2.observables(jnp.asarray(lattice_cluster(7, dim=2), dtype=jnp.float32))
    assert "q6" not in obs2 and float(obs2["psi6"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("d", [3, 2])
def test_initial_positions(d):
    t = LJCluster(N=13, d=d)
    x0 = t.initial_positions(jax.random.key(7), 32)
    assert x0.shape == (32, 13, d)
    x = np.asarray(x0, dtype=np.float64)
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-5)
    i, j = np.triu_indices(13, 1)
    r = np.linalg.norm(x[:, i] - x[:, j], axis=-1)
    assert r.min() > 2 ** (1 / 6) - 2 * 0.05 * math.sqrt(d)  # no overlapping atoms
    assert np.linalg.norm(x, axis=-1).max() < t.wall_radius
    assert bool(jnp.all(jnp.isfinite(t.grad(x0)))) and float(jnp.max(t.potential(x0))) < 0
    assert not np.allclose(x[0], x[1])  # random starts differ
    with pytest.raises(ValueError):
        t.initial_positions(jax.random.key(0), 0)


def test_heat_capacity_formula_and_attrs():
    assert heat_capacity(-40.0, 1606.5, 13, 0.5) == pytest.approx(2.0)
    make = DERIVED["heat_capacity"].make
    assert make({"N": 13, "temperature": 0.5})(1606.5, -40.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="temperature"):
        make({"N": 13})(1.0, 1.0)


@pytest.mark.slow
def test_heat_capacity_on_a_short_run():
    t = LJCluster(temperature=0.3)
    idata = run_chains(
        lambda eps: mala(ExactDelta(t), eps),
        jax.random.key(11),
        t.initial_positions(jax.random.key(10), 8),
        1000,
        warmup=300,
        thin=2,
        target=t,
        step_size=1e-3,
        target_acceptance=0.6,
        progress=False,
    )
    post, attrs = idata.posterior, run_attrs(idata)
    assert attrs["target"] == "LJCluster" and attrs["N"] == 13 and attrs["temperature"] == 0.3
    assert post["pair_hist"].dims[-1] == "r" and post["pair_hist"].shape == (8, 500, 50)
    spec = LJCluster.derived_quantities["heat_capacity"]
    cv, err = jackknife(spec.make(attrs), [np.asarray(post[k]) for k in spec.inputs])
    assert np.isfinite(cv) and np.isfinite(err) and cv > 0 and err > 0
    assert t.derived(post)["heat_capacity"] == pytest.approx((cv, err))


# -- exact sampling: the virial identity -------------------------------------------------------
#
# For the density exp(-S) of the relative coordinates y_i = x_i - x̄ (the hyperplane sum_i y_i = 0
# of dimension (N - 1) d; S is translation invariant, so the centre of mass is free and drops
# out), Z(λ) = ∫ exp(-S(λ y)) dy = λ^{-(N-1)d} Z(1) by the change of variables y -> y / λ.
# Differentiating at λ = 1 gives <sum_i y_i · ∇_i S> = (N - 1) d: 36 for LJ13 in 3-D. The wall
# makes the density normalisable and vanish at infinity; y · ∇S is the same in x and on the
# hyperplane, and equals x · ∇S because the forces sum to zero. It holds at every temperature;
# a low one (T = 0.2, below the LJ13 melting region: a mostly icosahedral solid) mixes fast under
# MALA. Its variance is large (sd ≈ 120 at T = 0.2, from the stiff breathing mode), hence the
# long run: about 1e5 effective draws give an MCSE ≈ 0.34, so the 10 % gradient error of the
# negative control (+3.6) lies about 10 MCSE away.

VIRIAL_T = 0.2


@pytest.fixture(scope="module")
def virial_run():
    """Exact MALA on LJ13 at T = 0.2: 16 chains, recording y·∇S with the true gradient and
    with a wrong one (scaled by 1.1, a force field 10 % too stiff), and the energy."""
    t = LJCluster(temperature=VIRIAL_T)

    def observables(x):
        y = x - jnp.mean(x, axis=0)
        virial = jnp.sum(y * t.grad(x))
        u = t.potential(x)
        return {
            "virial": virial,
            "virial_wrong": jnp.sum(y * 1.1 * t.grad(x)),
            "energy": u,
            "energy2": u * u,
        }

    return run_chains(
        lambda eps: mala(ExactDelta(t), eps),
        jax.random.key(2),
        t.initial_positions(jax.random.key(1), 16),
        96_000,
        warmup=1000,
        thin=8,
        target=t,
        observables=observables,
        step_size=1e-3,
        target_acceptance=0.6,
        progress=False,
    )


def _z(draws, expected):
    draws = np.asarray(draws, dtype=np.float64)
    return (draws.mean() - expected) / mcse(draws)


@pytest.mark.slow
def test_virial_identity_exact_mala(virial_run):
    post = virial_run.posterior
    z = _z(post["virial"], (13 - 1) * 3)
    assert abs(z) < 4, z
    # negative control: the same check with a gradient 10 % too large fails it
    z_wrong = _z(post["virial_wrong"], (13 - 1) * 3)
    assert abs(z_wrong) > 4, z_wrong
    # potential heat capacity: above its harmonic-solid value (3N - 6) / (2N) = 1.27 per atom
    # (anharmonicity and the first isomers, 2.85 above the minimum, add to it at T = 0.2)
    cv, err = LJCluster(temperature=VIRIAL_T).derived(post)["heat_capacity"]
    print(f"virial z = {z:.2f}, wrong-gradient z = {z_wrong:.2f}, C_v/N = {cv:.3f} ± {err:.3f}")
    assert np.isfinite(err) and cv > 1.0 + 2 * err, (cv, err)
