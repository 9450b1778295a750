r"""A Lennard-Jones cluster in a soft spherical container (reduced units ε = σ = k_B = 1).

The potential energy of ``N`` atoms at positions ``x_i`` (``d = 3`` or ``2``) is

.. math::
    U(x) = \sum_{i<j} 4\,(r_{ij}^{-12} - r_{ij}^{-6})
           + k \sum_i \max(0,\, |x_i - \bar x| - R_c)^2 ,

with ``x̄`` the centre of mass, and the action is ``S = U / T``. The one-sided harmonic wall
(exactly zero inside ``R_c``) keeps atoms from evaporating (a free cluster has no normalisable
Boltzmann density: an atom gains infinite entropy by leaving), and since it acts on distances
from the centre of mass the action keeps the translation, rotation, reflection and permutation
invariance of the bare cluster.

Physics choices (defaults)
--------------------------
``wall_radius``
    ``1.5`` times the radius of a ball that holds ``N`` close-packed atoms at the pair-minimum
    spacing ``r_m = 2^{1/6}`` (volume ``r_m^3/\sqrt2 = 1`` per atom in 3-D, area
    ``\sqrt3 r_m^2/2`` in 2-D): ``R_c ≈ 2.19`` for LJ13 in 3-D. The surface atoms of the
    icosahedral global minimum sit ``1.08`` from the centre and an adatom in a surface hollow
    (the low-lying "floater" isomers of the liquid-like cluster) about ``1.8``, so the wall
    touches neither the solid nor the low-lying liquid structures; an atom beyond ``2.19`` sits
    more than a bond length outside the surface shell, on its way to evaporating.
``wall_strength``
    ``k = 25``: the wall's curvature ``2k = 50`` is about that of the LJ bond at its minimum,
    ``U''(r_m) = 57.1``, so the wall adds no mode stiffer than the bonds (it does not limit a
    Langevin step size), while an atom at ``T = 0.3`` penetrates it by only
    ``\sqrt{T / 2k} ≈ 0.08``.
``temperature``
    ``T = 0.3``: in the solid-liquid change of LJ13, whose heat-capacity peak lies near
    ``T ≈ 0.28-0.35`` (its position depends on the container), so both the icosahedral solid
    and liquid-like isomers are visited. Below (``T ≈ 0.1-0.2``) the cluster is a mostly
    icosahedral solid, where exact samplers mix fast (the tests check the virial identity at
    ``T = 0.2``).

Pair distances are floored at ``0.5`` (the pair energy stays at its value there, 16 128, a
configuration of Boltzmann weight below ``e^{-10^4}`` at any ``T ≤ 1``), so coincident atoms
give a finite action and a finite (zero) pair force in float32.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc.stats import jackknife
from uqmcmc.targets.base import Derived

Array = jax.Array

__all__ = ["LJCluster", "heat_capacity", "default_wall_radius", "lattice_cluster"]

#: Pair distance of the LJ minimum, ``2^{1/6}``.
R_MIN = 2.0 ** (1.0 / 6.0)

#: Pair distances below this are treated as this distance (float32 safety, see module doc).
R_FLOOR = 0.5

#: Posterior dimension names of the non-scalar observables.
OBSERVABLE_DIMS = {"pair_hist": ["r"]}


def default_wall_radius(n_atoms: int, dim: int = 3) -> float:
    """The default container radius: 1.5 times the radius of ``n_atoms`` close-packed atoms.

    Close packing at the pair-minimum spacing ``r_m = 2^{1/6}`` takes volume ``r_m^3/√2 = 1``
    per atom in 3-D and area ``√3 r_m^2 / 2`` in 2-D.

    Examples
    --------
    >>> round(default_wall_radius(13, 3), 3), round(default_wall_radius(13, 2), 3)
    (2.188, 3.187)
    """
    if dim == 3:
        packed = (3.0 * n_atoms / (4.0 * math.pi)) ** (1.0 / 3.0)
    elif dim == 2:
        packed = math.sqrt(n_atoms * math.sqrt(3.0) / 2.0 * R_MIN**2 / math.pi)
    else:
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    return 1.5 * packed


def lattice_cluster(n_atoms: int, dim: int = 3, spacing: float = R_MIN) -> np.ndarray:
    """The ``n_atoms`` sites of a close-packed lattice nearest to one site, centred at zero.

    Face-centred cubic in 3-D (13 atoms: the cuboctahedron, higher in energy than the LJ13
    icosahedron, which chains at finite temperature soon find), triangular in 2-D (7 atoms: a
    hexagon around a centre), with nearest-neighbour distance ``spacing``. Sites are taken by
    distance from the central site, ties broken in a fixed order, so the result is
    deterministic.

    Examples
    --------
    >>> x = lattice_cluster(13)
    >>> x.shape, bool(np.allclose(np.linalg.norm(x[1:], axis=1), 2 ** (1 / 6)))
    ((13, 3), True)
    >>> round(float(np.linalg.norm(lattice_cluster(7, dim=2), axis=1).max()), 4)
    1.1225
    """
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    m = int(math.ceil(n_atoms ** (1.0 / dim))) + 2
    grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1)] * dim, indexing="ij"), axis=-1).reshape(
        -1, dim
    )
    if dim == 3:
        sites = grid[grid.sum(axis=1) % 2 == 0] * (spacing / math.sqrt(2.0))
    else:
        basis = np.array([[1.0, 0.0], [0.5, math.sqrt(3.0) / 2.0]]) * spacing
        sites = grid @ basis
    r2 = np.round(np.sum(sites**2, axis=1), 9)
    order = np.lexsort((*sites.T[::-1], r2))
    chosen = sites[order[:n_atoms]]
    return chosen - chosen.mean(axis=0)


def heat_capacity(energy: float, energy2: float, n_atoms: int, temperature: float) -> float:
    """Potential-energy part of the heat capacity per atom, ``(<U²> - <U>²) / (N T²)``.

    The kinetic part of a classical cluster adds the constant ``d / 2`` per atom.

    Examples
    --------
    >>> heat_capacity(energy=-40.0, energy2=1606.5, n_atoms=13, temperature=0.5)
    2.0
    """
    return (energy2 - energy**2) / (n_atoms * temperature**2)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _call(method: Any, target: Any, x: Array) -> Any:
    """``method(target, x)`` compiled once per target and shape (one XLA program instead of
    one per primitive when called outside ``jit``; inlined inside an outer ``jit``)."""
    return method(target, x)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _initial(target: Any, key: Array, n: int, jitter: float) -> Array:
    return target._initial(key, n, jitter)


def _random_rotations(key: Array, n: int, d: int) -> Array:
    """``n`` uniformly random rotation matrices: unit quaternions in 3-D, angles in 2-D."""
    if d == 2:
        a = jax.random.uniform(key, (n,), maxval=2.0 * jnp.pi)
        c, s = jnp.cos(a), jnp.sin(a)
        return jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)
    q = jax.random.normal(key, (n, 4))
    w, x, y, z = jnp.moveaxis(q / jnp.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


def _attr(attrs: Mapping[str, Any], key: str, what: str) -> float:
    if key not in attrs:
        raise ValueError(f"{what} needs {key!r}: the run's attrs have none")
    return float(attrs[key])


class LJCluster:
    r"""``N`` Lennard-Jones atoms in ``d`` dimensions in a soft container, at temperature ``T``.

    Action ``S(x) = U(x) / T`` of one configuration ``x`` of shape ``(N, d)`` (see the module
    docstring for the potential and the choice of the defaults). Every method also accepts
    leading batch axes ``(..., N, d)`` and is jit- and vmap-able. The action is invariant under
    translations, rotations, reflections and permutations of the atoms; its gradient (by
    ``jax.grad``) has zero sum over atoms, so a Langevin chain's centre of mass performs a
    free random walk that no observable sees.

    Wrap it in :class:`~uqmcmc.targets.Tempered` with care: ``Tempered(LJCluster(T), t)``
    samples at temperature ``T t`` but records ``temperature = t`` in its params, which the
    heat capacity reads; build ``LJCluster(temperature=T * t)`` instead.

    Parameters
    ----------
    N : int
        Number of atoms, at least 2.
    d : int
        Dimension, 2 or 3.
    temperature : float
        ``T > 0`` (units of ε).
    wall_radius : float, optional
        Container radius ``R_c`` around the centre of mass; default
        :func:`default_wall_radius` (2.19 for LJ13 in 3-D).
    wall_strength : float
        ``k > 0`` of the one-sided harmonic wall ``k (|x_i - x̄| - R_c)²``.
    bond_cutoff : float
        Pairs closer than this are bonds for the bond-orientational order (hard cutoff; the
        first minimum of the LJ pair distribution is near 1.5).
    n_bins : int
        Number of bins of the pair-distance histogram on ``[0, r_max)``.
    r_max : float, optional
        Upper end of the histogram; default ``2 R_c + 0.5`` (no pair of a confined cluster
        is farther apart).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> t = LJCluster(N=2, temperature=0.5)
    >>> dimer = jnp.array([[0.0, 0.0, 0.0], [2 ** (1 / 6), 0.0, 0.0]])
    >>> float(t.action(dimer))  # U = -1 at the pair minimum, S = U / T
    -2.0
    >>> t.grad(dimer).round(4).tolist()  # no force at the minimum
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    >>> LJCluster()
    LJCluster(N=13, d=3, temperature=0.3, wall_radius=2.188, wall_strength=25.0)
    """

    def __init__(
        self,
        N: int = 13,
        d: int = 3,
        temperature: float = 0.3,
        wall_radius: float | None = None,
        wall_strength: float = 25.0,
        bond_cutoff: float = 1.5,
        n_bins: int = 50,
        r_max: float | None = None,
    ):
        if isinstance(N, bool) or int(N) != N or N < 2:
            raise ValueError(f"N must be an integer >= 2, got {N!r}")
        if isinstance(d, bool) or d not in (2, 3):
            raise ValueError(f"d must be 2 or 3, got {d!r}")
        if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
        self.N = int(N)
        self.d = int(d)
        if wall_radius is None:
            wall_radius = default_wall_radius(self.N, self.d)
        values = {
            "temperature": temperature,
            "wall_radius": wall_radius,
            "wall_strength": wall_strength,
            "bond_cutoff": bond_cutoff,
        }
        if r_max is not None:
            values["r_max"] = r_max
        for name, value in values.items():
            if not (math.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        self.temperature = float(temperature)
        self.wall_radius = float(wall_radius)
        self.wall_strength = float(wall_strength)
        self.bond_cutoff = float(bond_cutoff)
        self.n_bins = int(n_bins)
        self.r_max = float(r_max) if r_max is not None else 2.0 * self.wall_radius + 0.5
        i, j = np.triu_indices(self.N, k=1)
        self._i, self._j = i, j

    # -- configuration space -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one configuration, ``(N, d)``."""
        return (self.N, self.d)

    @property
    def n_pairs(self) -> int:
        """Number of atom pairs ``N (N - 1) / 2``."""
        return self.N * (self.N - 1) // 2

    @property
    def params(self) -> dict:
        """The parameters, as recorded in InferenceData attrs."""
        return {
            "target": "LJCluster",
            "N": self.N,
            "d": self.d,
            "temperature": self.temperature,
            "wall_radius": self.wall_radius,
            "wall_strength": self.wall_strength,
            "bond_cutoff": self.bond_cutoff,
            "n_bins": self.n_bins,
            "r_max": self.r_max,
        }

    @property
    def bin_edges(self) -> np.ndarray:
        """Edges of the ``pair_hist`` bins, ``n_bins + 1`` values from 0 to ``r_max``."""
        return np.linspace(0.0, self.r_max, self.n_bins + 1)

    @property
    def bin_centres(self) -> np.ndarray:
        """Centres of the ``pair_hist`` bins (the ``r`` coordinate of that observable)."""
        edges = self.bin_edges
        return 0.5 * (edges[1:] + edges[:-1])

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.params == self.params

    def __hash__(self) -> int:
        return hash(tuple(self.params.items()))

    def __repr__(self) -> str:
        return (
            f"LJCluster(N={self.N}, d={self.d}, temperature={self.temperature}, "
            f"wall_radius={self.wall_radius:.4g}, wall_strength={self.wall_strength})"
        )

    #: The surrogate the compare workflow trains: the energy, as machine-learned interatomic
    #: potentials do (forces by automatic differentiation).
    default_surrogate = "energy"

    def default_network(self, surrogate: str) -> Any:
        """The energy network of this cluster, a :class:`~uqmcmc.uq.registry.Network` of
        :class:`~uqmcmc.nets.AtomisticEnergyNet` (radial and angular descriptors, cutoff 2.5;
        one hidden layer of 16 for the BNN). Only ``"energy"``: a network of per-atom forces
        that is not the gradient of an energy is not what an interatomic potential is.

        Examples
        --------
        >>> LJCluster(N=5, d=2).default_network("energy").kwargs["d"]
        2
        """
        from uqmcmc.nets import AtomisticEnergyNet
        from uqmcmc.uq.registry import Network

        if surrogate != "energy":
            raise ValueError(
                f"the LJ cluster's surrogate is an energy network (forces by autodiff), not "
                f"{surrogate!r}: use surrogate='energy'"
            )
        return Network(AtomisticEnergyNet, {"d": self.d}, small={"hidden": (16,)})

    def _check(self, x: Array) -> Array:
        x = jnp.asarray(x)
        if x.shape[-2:] != self.shape:
            raise ValueError(f"configuration must have trailing shape {self.shape}, got {x.shape}")
        return x

    def _pair_vectors(self, x: Array) -> Array:
        return x[..., self._j, :] - x[..., self._i, :]

    # -- action and derivatives ----------------------------------------------------------
    def pair_energy(self, x: Array) -> Array:
        """The Lennard-Jones part ``sum_{i<j} 4 (r^-12 - r^-6)``, distances floored at 0.5.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> t = LJCluster(N=2)
        >>> float(t.pair_energy(jnp.zeros((2, 3))))  # coincident atoms: finite
        16128.0
        """
        return _call(LJCluster._pair_energy, self, self._check(x))

    def _pair_energy(self, x: Array) -> Array:
        r2 = jnp.sum(self._pair_vectors(x) ** 2, axis=-1)
        inv6 = 1.0 / jnp.maximum(r2, R_FLOOR**2) ** 3
        return jnp.sum(4.0 * (inv6 * inv6 - inv6), axis=-1)

    def wall_energy(self, x: Array) -> Array:
        """The container ``k sum_i max(0, |x_i - x̄| - R_c)^2``.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> t = LJCluster(N=2, wall_radius=1.0, wall_strength=10.0)
        >>> float(t.wall_energy(jnp.array([[-1.5, 0.0, 0.0], [1.5, 0.0, 0.0]])))  # 2 * 10 * 0.25
        5.0
        """
        return _call(LJCluster._wall_energy, self, self._check(x))

    def _wall_energy(self, x: Array) -> Array:
        y = x - jnp.mean(x, axis=-2, keepdims=True)
        # sqrt of a value >= R_c^2 > 0: finite gradient, and zero inside the container
        dist = jnp.sqrt(jnp.maximum(jnp.sum(y * y, axis=-1), self.wall_radius**2))
        return self.wall_strength * jnp.sum((dist - self.wall_radius) ** 2, axis=-1)

    def potential(self, x: Array) -> Array:
        """The potential energy ``U = pair_energy + wall_energy``, shape ``x.shape[:-2]``.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> t = LJCluster(N=3, d=2)
        >>> r = 2 ** (1 / 6)
        >>> triangle = jnp.array([[0.0, 0.0], [r, 0.0], [r / 2, r * 3**0.5 / 2]])
        >>> round(float(t.potential(triangle)), 5)
        -3.0
        """
        return _call(LJCluster._potential, self, self._check(x))

    def _potential(self, x: Array) -> Array:
        return self._pair_energy(x) + self._wall_energy(x)

    def action(self, x: Array) -> Array:
        """The action ``S = U / T``, shape ``x.shape[:-2]``."""
        return _call(LJCluster._action, self, self._check(x))

    def _action(self, x: Array) -> Array:
        return self._potential(x) / self.temperature

    def grad(self, x: Array) -> Array:
        """``dS/dx`` by ``jax.grad`` (finite for every finite ``x``), same shape as ``x``."""
        return _call(LJCluster._grad, self, self._check(x))

    def _grad(self, x: Array) -> Array:
        return jnp.vectorize(jax.grad(self._action), signature="(n,d)->(n,d)")(x)

    def baseline(self, x: Array) -> Array:
        """The part of the action a surrogate need not learn, ``(U_core(x) + U_wall(x)) / T``:
        the container wall and the pairs' repulsive core (Weeks-Chandler-Andersen: the
        Lennard-Jones pair energy plus 1 below its minimum ``2^(1/6)``, zero beyond), exact and
        cheap. The compare workflow's surrogates learn the rest, the attraction
        (:class:`~uqmcmc.uq.baseline.WithBaseline`), as machine-learned potentials add a known
        short-range repulsion (e.g. ZBL) and external terms: descriptors with a cutoff cannot
        see a wall around the centre of mass (atoms evaporate), and a network trained where
        atoms never overlap does not stop them from overlapping.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> t = LJCluster(N=2, temperature=0.5)
        >>> float(t.baseline(jnp.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]])))  # beyond the core
        0.0
        >>> float(t.baseline(jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])))  # (0 + 1) / 0.5
        2.0
        """
        return _call(LJCluster._baseline, self, self._check(x))

    def _baseline(self, x: Array) -> Array:
        r2 = jnp.sum(self._pair_vectors(x) ** 2, axis=-1)
        inv6 = 1.0 / jnp.clip(r2, R_FLOOR**2, R_MIN**2) ** 3  # at r >= R_MIN: U_LJ = -1
        core = jnp.sum(4.0 * (inv6 * inv6 - inv6) + 1.0, axis=-1)
        return (core + self._wall_energy(x)) / self.temperature

    # -- configurations ------------------------------------------------------------------
    def initial_positions(self, key: Array, n: int, jitter: float = 0.05) -> Array:
        """``n`` compact random clusters: :func:`lattice_cluster`, randomly rotated, each
        coordinate moved by a uniform ``[-jitter, jitter]``, centred at zero.

        With the default jitter no two atoms come closer than ``2^{1/6} - 2 jitter √d ≈ 0.95``,
        and every atom of LJ13 lies within 1.3 of the centre, well inside the container.

        Examples
        --------
        >>> import jax
        >>> t = LJCluster()
        >>> x0 = t.initial_positions(jax.random.key(0), 4)
        >>> x0.shape, bool(jax.numpy.all(t.action(x0) < 0))
        ((4, 13, 3), True)
        """
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if not (0 <= jitter < 0.25):
            raise ValueError(f"jitter must be in [0, 0.25) to keep atoms apart, got {jitter!r}")
        return _initial(self, key, int(n), float(jitter))

    def _initial(self, key: Array, n: int, jitter: float) -> Array:
        base = jnp.asarray(lattice_cluster(self.N, self.d), dtype=float)
        k_rot, k_jit = jax.random.split(key)
        q = _random_rotations(k_rot, n, self.d)
        shake = jax.random.uniform(k_jit, (n, self.N, self.d), minval=-jitter, maxval=jitter)
        x = jnp.einsum("nd,bed->bne", base, q) + shake
        return x - jnp.mean(x, axis=-2, keepdims=True)

    # -- observables ---------------------------------------------------------------------
    def bond_order(self, x: Array) -> Array:
        r"""Bond-orientational order of the whole cluster over bonds shorter than
        ``bond_cutoff``: Steinhardt ``Q6`` in 3-D, ``|ψ6|`` in 2-D.

        ``Q6² = (4π/13) Σ_m |Σ_b Y_6m(u_b)|² / n_b² = Σ_{b,b'} P_6(u_b·u_b') / n_b²`` by the
        addition theorem (``u_b`` the bond directions, ``n_b`` their number), so no spherical
        harmonics are needed; ``ψ6 = Σ_b e^{6iθ_b} / n_b``. Zero when there is no bond.
        Ideal values: 0.575 for fcc (and the cuboctahedron), 0.663 for the 12 bonds of an
        icosahedron's centre, 1 for a triangular lattice patch.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> t = LJCluster(N=13, bond_cutoff=1.2)
        >>> round(float(t.bond_order(jnp.asarray(lattice_cluster(13)))), 4)
        0.5745
        >>> round(float(LJCluster(N=7, d=2).bond_order(jnp.asarray(lattice_cluster(7, 2)))), 4)
        1.0
        """
        return _call(LJCluster._bond_order, self, self._check(x))

    def _bond_order(self, x: Array) -> Array:
        vec = self._pair_vectors(x)
        r2 = jnp.sum(vec * vec, axis=-1)
        bonded = r2 < self.bond_cutoff**2
        w = bonded.astype(x.dtype)
        n_b = jnp.maximum(jnp.sum(w, axis=-1), 1.0)
        u = vec / jnp.sqrt(jnp.maximum(r2, R_FLOOR**2))[..., None]
        if self.d == 3:
            c = jnp.einsum("...pa,...qa->...pq", u, u)
            c2 = c * c
            p6 = (((231.0 * c2 - 315.0) * c2 + 105.0) * c2 - 5.0) / 16.0
            q2 = jnp.einsum("...p,...pq,...q->...", w, p6, w) / n_b**2
            return jnp.sqrt(jnp.maximum(q2, 0.0))
        theta = jnp.arctan2(u[..., 1], u[..., 0])
        re = jnp.sum(w * jnp.cos(6.0 * theta), axis=-1) / n_b
        im = jnp.sum(w * jnp.sin(6.0 * theta), axis=-1) / n_b
        return jnp.sqrt(re * re + im * im)

    @property
    def bond_order_name(self) -> str:
        """Name of the bond-order observable: ``"q6"`` in 3-D, ``"psi6"`` in 2-D."""
        return "q6" if self.d == 3 else "psi6"

    def observables(self, x: Array) -> dict[str, Array]:
        """Per-configuration observables, batched over leading axes.

        Returns
        -------
        dict with
            ``energy`` the potential energy ``U`` (pair and wall); ``energy2`` its square (for
            the heat capacity); ``rg`` the radius of gyration ``sqrt(mean_i |x_i - x̄|²)``;
            ``q6`` (3-D) or ``psi6`` (2-D) the bond order (:meth:`bond_order`); ``pair_hist``
            the fraction of the ``N (N - 1) / 2`` pairs with distance in each bin of
            :attr:`bin_edges` (dim ``r``; pairs beyond ``r_max`` are not counted).

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> t = LJCluster(N=13)
        >>> obs = t.observables(jnp.asarray(lattice_cluster(13)))
        >>> sorted(obs), obs["pair_hist"].shape, round(float(obs["pair_hist"].sum()), 4)
        (['energy', 'energy2', 'pair_hist', 'q6', 'rg'], (50,), 1.0)
        >>> round(float(obs["rg"]), 4)  # 12 of 13 atoms at 2^(1/6) from the centre
        1.0785
        """
        return _call(LJCluster._observables, self, self._check(x))

    def _observables(self, x: Array) -> dict[str, Array]:
        u = self._potential(x)
        y = x - jnp.mean(x, axis=-2, keepdims=True)
        rg = jnp.sqrt(jnp.mean(jnp.sum(y * y, axis=-1), axis=-1))
        r = jnp.sqrt(jnp.sum(self._pair_vectors(x) ** 2, axis=-1))
        idx = jnp.floor(r * (self.n_bins / self.r_max)).astype(jnp.int32)
        hist = jnp.sum(jax.nn.one_hot(idx, self.n_bins, dtype=x.dtype), axis=-2) / self.n_pairs
        return {
            "energy": u,
            "energy2": u * u,
            "rg": rg,
            self.bond_order_name: self._bond_order(x),
            "pair_hist": hist,
        }

    observable_dims = OBSERVABLE_DIMS

    #: Observables that :func:`uqmcmc.diagnostics.compare_to_exact` compares by default (those
    #: a run has: ``q6`` in 3-D, ``psi6`` in 2-D).
    compared_observables = ("energy", "rg", "q6", "psi6", "heat_capacity")

    #: Observables whose whole distribution is compared with the exact chain's.
    distribution_observables = ("energy", "rg")

    # -- ensemble-level estimators -------------------------------------------------------
    def derived(self, draws: Mapping[str, np.ndarray], n_blocks: int | None = None) -> dict:
        """The heat capacity per atom (potential part) with its block-jackknife error.

        Parameters
        ----------
        draws
            Mapping with ``energy`` and ``energy2`` of shape ``(chain, draw)``, e.g.
            ``idata.posterior`` or a dict of arrays.

        Returns
        -------
        ``{"heat_capacity": (mean, err)}`` (the quantities of :data:`DERIVED`).

        Examples
        --------
        >>> import numpy as np
        >>> u = np.random.default_rng(0).normal(-40.0, 1.0, size=(4, 2000))
        >>> cv, err = LJCluster(N=13, temperature=0.5).derived({"energy": u, "energy2": u**2})[
        ...     "heat_capacity"]
        >>> bool(abs(cv - 1 / (13 * 0.25)) < 4 * err)  # Var(U) = 1
        True
        """
        attrs = self.params
        return {
            name: jackknife(spec.make(attrs), [np.asarray(draws[i]) for i in spec.inputs], n_blocks)
            for name, spec in DERIVED.items()
        }


#: The derived LJ-cluster quantities, from the posterior means and a run's attrs alone (``N``
#: and ``temperature``, which the chain driver stores from :attr:`LJCluster.params`).
DERIVED: dict[str, Derived] = {
    "heat_capacity": Derived(
        ("energy2", "energy"),
        lambda a: (
            lambda energy2, energy: heat_capacity(
                energy,
                energy2,
                int(_attr(a, "N", "heat_capacity")),
                _attr(a, "temperature", "heat_capacity"),
            )
        ),
    ),
}

LJCluster.derived_quantities = DERIVED
