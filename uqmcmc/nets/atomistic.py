r"""Behler-Parrinello energy network for atomistic configurations ``(*batch, N, d)``.

The energy is a sum of per-atom terms, ``E(x) = sum_i e(G_i)``, where ``G_i`` are smooth
symmetry functions of atom ``i``'s neighbourhood within a cutoff ``r_c``, and ``e`` is a small
MLP shared by all atoms (:class:`AtomisticEnergyNet`). The descriptors depend on interatomic
distances and angles only, so ``E`` is invariant to translations, rotations, reflections and
permutations of the atoms by construction, and extensive (an atom farther than ``r_c`` from all
others adds the energy of an empty neighbourhood).

Descriptors (:func:`symmetry_functions`), with the cosine cutoff
``f_c(r) = (cos(pi r / r_c) + 1) / 2`` for ``r < r_c`` and 0 beyond (:func:`cosine_cutoff`;
value and slope vanish at ``r_c``, so energies and forces are continuous across it):

.. math::
    G^2_i(\eta, r_s) = \sum_{j \ne i} e^{-\eta (r_{ij} - r_s)^2} f_c(r_{ij}),

    G^4_i(\eta, \zeta, \lambda) = 2^{1-\zeta} \sum_{j \ne k \ne i}
        (1 + \lambda \cos\theta_{ijk})^\zeta e^{-\eta (r_{ij}^2 + r_{ik}^2 + r_{jk}^2)}
        f_c(r_{ij}) f_c(r_{ik}) f_c(r_{jk}),

with ``cos(theta_ijk)`` from dot products (any ``d``). Distances come from squared distances
through a double ``jnp.where`` around the square root, so coincident atoms give finite
descriptors with finite gradients.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from uqmcmc._validation import positive, positive_int
from uqmcmc.nets.mlp import apply_readout
from uqmcmc.nets.rcnn import ACTIVATIONS

Array = jax.Array

__all__ = [
    "AtomisticEnergyNet",
    "DescriptorScale",
    "cosine_cutoff",
    "radial_grid",
    "angular_grid",
    "symmetry_functions",
]


class DescriptorScale(nnx.Variable):
    """A non-trainable per-descriptor shift or scale of :class:`AtomisticEnergyNet`.

    Not an ``nnx.Param``, so optimisers built on ``nnx.Param`` leave it alone; like every
    non-RNG variable it is part of the module state, hence saved and restored by
    :func:`uqmcmc.uq.io.state_arrays` / :func:`uqmcmc.uq.io.restore_module`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> class Shifted(nnx.Module):
    ...     def __init__(self):
    ...         self.shift = DescriptorScale(jnp.zeros(2))
    >>> m = Shifted()
    >>> len(nnx.state(m, nnx.Param)), len(nnx.state(m, DescriptorScale))
    (0, 1)
    """


def _safe_sqrt(r2: Array) -> Array:
    """``sqrt(r2)`` with a zero (not NaN) gradient at ``r2 = 0`` (the double-``where`` trick)."""
    pos = r2 > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)


def cosine_cutoff(r: Array, cutoff: float) -> Array:
    """``f_c(r) = (cos(pi r / r_c) + 1) / 2`` for ``r < r_c``, 0 beyond (value and slope
    vanish at ``r_c``).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> cosine_cutoff(jnp.array([0.0, 1.0, 2.0, 3.0]), 2.0).round(6).tolist()
    [1.0, 0.5, 0.0, 0.0]
    >>> abs(float(jax.grad(cosine_cutoff)(1.999, 2.0))) < 1e-2  # smooth at the cutoff
    True
    """
    r = jnp.asarray(r)
    inside = r < cutoff
    rr = jnp.where(inside, r, cutoff)
    return jnp.where(inside, 0.5 * (jnp.cos(jnp.pi * rr / cutoff) + 1.0), 0.0)


def radial_grid(cutoff: float, n_radial: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(eta, r_s)`` pairs of the radial functions: ``n_radial`` shifted Gaussians.

    Centres ``r_s`` evenly spaced on ``[r_c / 4, r_c)`` with spacing ``h = 3 r_c / (4 n)``,
    widths ``sigma = h`` (``eta = 1 / (2 h^2)``), so neighbouring Gaussians overlap and
    together cover the shell where neighbours are found (for ``r_c = 2.5``: ``r_s`` from 0.625
    to 2.27, ``eta = 9.1``).

    Examples
    --------
    >>> eta, rs = radial_grid(2.0, 3)
    >>> rs.round(3).tolist(), eta.round(3).tolist()
    ([0.5, 1.0, 1.5], [2.0, 2.0, 2.0])
    """
    h = 0.75 * cutoff / n_radial
    rs = 0.25 * cutoff + h * np.arange(n_radial)
    return np.full(n_radial, 1.0 / (2.0 * h * h)), rs


def angular_grid(cutoff: float) -> tuple[tuple[float, int, float], ...]:
    """The ``(eta, zeta, lambda)`` triples of the angular functions: 8 of them.

    ``eta`` in ``{0.5, 2} / r_c^2`` (a wide and a narrower triplet envelope), ``zeta`` in
    ``{1, 4}``, ``lambda = +1, -1``.

    Examples
    --------
    >>> angular_grid(1.0)[:3]
    ((0.5, 1, 1.0), (0.5, 1, -1.0), (0.5, 4, 1.0))
    """
    return tuple(
        (e / cutoff**2, zeta, lam) for e in (0.5, 2.0) for zeta in (1, 4) for lam in (1.0, -1.0)
    )


def symmetry_functions(
    x: Array,
    cutoff: float,
    radial: tuple[np.ndarray, np.ndarray],
    angular: Sequence[tuple[float, int, float]] = (),
) -> Array:
    """Behler-Parrinello descriptors ``(*batch, N, n_radial + n_angular)`` of ``x (*batch, N, d)``.

    Parameters
    ----------
    x : Array
        Positions, ``(*batch, N, d)``.
    cutoff : float
        ``r_c`` of :func:`cosine_cutoff`.
    radial : (eta, r_s)
        Arrays of equal length (e.g. :func:`radial_grid`): one ``G2`` per pair.
    angular : sequence of (eta, zeta, lambda)
        One ``G4`` per triple (e.g. :func:`angular_grid`; ``zeta`` a positive integer);
        empty for radial descriptors only.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> dimer = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    >>> g = symmetry_functions(dimer, 2.0, (jnp.array([0.0]), jnp.array([0.0])))
    >>> g.round(6).tolist()  # G2(eta = 0) is f_c(1) = 0.5 for both atoms
    [[0.5], [0.5]]
    >>> tri = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> symmetry_functions(tri, 2.0, radial_grid(2.0, 4), angular_grid(2.0)).shape
    (3, 12)
    """
    eta, rs = (tuple(float(v) for v in np.asarray(a, dtype=float).ravel()) for a in radial)
    if len(eta) != len(rs):
        raise ValueError(f"radial eta and r_s differ in length: {len(eta)} and {len(rs)}")
    ang = tuple((float(e), int(z), float(lam)) for e, z, lam in angular)
    if any(z < 1 for _, z, _ in ang):
        raise ValueError("angular zeta values must be positive integers")
    return _symmetry_functions(jnp.asarray(x), float(cutoff), (eta, rs), ang)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _symmetry_functions(
    x: Array,
    cutoff: float,
    radial: tuple[tuple[float, ...], tuple[float, ...]],
    angular: tuple[tuple[float, int, float], ...],
) -> Array:
    """:func:`symmetry_functions` compiled once per shape and descriptor set (inlined inside an
    outer ``jit``)."""
    n = x.shape[-2]
    vec = x[..., None, :, :] - x[..., :, None, :]  # vec[i, j] = x_j - x_i
    r2 = jnp.sum(vec * vec, axis=-1)
    r = _safe_sqrt(r2)
    others = ~jnp.eye(n, dtype=bool)  # self-pairs excluded
    fc = jnp.where(others, cosine_cutoff(r, cutoff), 0.0)
    eta = jnp.asarray(radial[0], dtype=x.dtype)
    rs = jnp.asarray(radial[1], dtype=x.dtype)
    g2 = jnp.sum(jnp.exp(-eta * (r[..., None] - rs) ** 2) * fc[..., None], axis=-2)
    if not angular:
        return g2
    # cos(theta_ijk) from dot products; 0 (finite, finite gradient) for a coincident pair
    inv_r = jnp.where(r2 > 0, 1.0 / jnp.where(r2 > 0, r, 1.0), 0.0)
    dots = jnp.einsum("...ijc,...ikc->...ijk", vec, vec)
    cos = dots * inv_r[..., :, :, None] * inv_r[..., :, None, :]
    out = [g2]
    for eta_a, zeta, lam in angular:
        # a_ij = exp(-eta r_ij^2) f_c(r_ij), zero on the diagonal: the product a_ij a_ik a_jk
        # excludes every triplet with j = i, k = i or j = k
        a = jnp.exp(-eta_a * r2) * fc
        env = a[..., :, :, None] * a[..., :, None, :] * a[..., None, :, :]
        ang = (1.0 + lam * cos) ** int(zeta)
        out.append((2.0 ** (1 - int(zeta)) * jnp.sum(ang * env, axis=(-2, -1)))[..., None])
    return jnp.concatenate(out, axis=-1)


class AtomisticEnergyNet(nnx.Module):
    """Behler-Parrinello energy ``E(x) = sum_i e(G_i)`` of configurations ``(*batch, N, d)``.

    ``G_i`` are the :func:`symmetry_functions` of atom ``i`` (``n_radial`` radial functions on
    :func:`radial_grid`, plus the 8 angular functions of :func:`angular_grid` when
    ``angular``), standardised by a fixed per-descriptor mean and standard deviation
    (``g_mean``, ``g_std``: :class:`DescriptorScale` variables, identity until
    :meth:`fit_scaling` sets them from training configurations; saved with the state like the
    weights, never trained). ``e`` is an MLP shared by all atoms. The network follows the
    uqmcmc convention with the atoms as the one site axis: ``features(x)`` is
    ``(*batch, N, F)``, ``readout`` a ``Linear(F, 1)`` and ``reduce = "sum"``.
    :meth:`grad` gives ``dE/dx`` (forces are ``-grad``).

    Parameters
    ----------
    d : int
        Spatial dimension of the configurations, 2 or 3.
    cutoff : float
        Cutoff radius ``r_c`` of the descriptors.
    n_radial : int
        Number of radial functions.
    angular : bool
        Add the angular ``G4`` functions.
    hidden : sequence of int
        Widths of the per-atom MLP's hidden layers; the last one is ``F``.
    dropout : float
        Rate of an ``nnx.Dropout`` after every hidden activation (0 disables; for MC dropout).
    activation : str
        One of :data:`~uqmcmc.nets.rcnn.ACTIVATIONS`; a smooth one (the default ``tanh``) keeps
        forces continuous.
    rngs : nnx.Rngs

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> net = AtomisticEnergyNet(d=3, hidden=(16,), rngs=nnx.Rngs(0))
    >>> x = jax.random.normal(jax.random.key(1), (4, 5, 3))  # 4 configurations of 5 atoms
    >>> net.fit_scaling(x)
    >>> net(x).shape, net.features(x).shape
    ((4,), (4, 5, 16))
    >>> shifted = net(x[:, ::-1] + 1.0)  # permuted and translated: the same energy
    >>> bool(jnp.allclose(shifted, net(x), atol=1e-5))
    True
    """

    reduce = "sum"
    site_axes = 1

    def __init__(
        self,
        d: int = 3,
        cutoff: float = 2.5,
        n_radial: int = 8,
        angular: bool = True,
        hidden: Sequence[int] = (32, 32),
        dropout: float = 0.0,
        *,
        activation: str = "tanh",
        descriptor_mean: Sequence[float] | None = None,
        descriptor_std: Sequence[float] | None = None,
        energy_shift: float = 0.0,
        rngs: nnx.Rngs,
    ):
        if isinstance(d, bool) or d not in (2, 3):
            raise ValueError(f"d must be 2 or 3, got {d!r}")
        positive("cutoff", cutoff)
        if not math.isfinite(float(cutoff)):
            raise ValueError(f"cutoff must be finite, got {cutoff!r}")
        n_radial = positive_int("n_radial", n_radial)
        hidden = tuple(positive_int("hidden width", h) for h in hidden)
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.d = int(d)
        self.cutoff = float(cutoff)
        self.activation = activation
        eta, rs = radial_grid(self.cutoff, n_radial)
        self.radial = (tuple(float(v) for v in eta), tuple(float(v) for v in rs))
        self.angular = angular_grid(self.cutoff) if angular else ()
        n_desc = n_radial + len(self.angular)
        self.n_descriptors = n_desc
        mean = np.zeros(n_desc) if descriptor_mean is None else np.asarray(descriptor_mean)
        std = np.ones(n_desc) if descriptor_std is None else np.asarray(descriptor_std)
        if mean.shape != (n_desc,) or std.shape != (n_desc,) or not np.all(std > 0):
            raise ValueError(
                f"descriptor_mean and descriptor_std must be {n_desc} numbers (std > 0)"
            )
        self.g_mean = DescriptorScale(jnp.asarray(mean, dtype=float))
        self.g_std = DescriptorScale(jnp.asarray(std, dtype=float))
        widths = [n_desc, *hidden]
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.dropout = nnx.Dropout(float(dropout), rngs=rngs) if dropout > 0 else None
        self.readout = nnx.Linear(widths[-1], 1, rngs=rngs)
        if energy_shift:
            self.readout.bias.set_value(self.readout.bias[...] + float(energy_shift))

    def _check(self, x: Array) -> Array:
        x = jnp.asarray(x)
        if x.ndim < 2 or x.shape[-1] != self.d:
            raise ValueError(f"x must have shape (*batch, N, {self.d}), got {x.shape}")
        return x

    def descriptors(self, x: Array) -> Array:
        """Raw (unscaled) descriptors ``(*batch, N, n_descriptors)``.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> net = AtomisticEnergyNet(d=2, n_radial=4, angular=False, rngs=nnx.Rngs(0))
        >>> net.descriptors(jnp.zeros((3, 2))).shape
        (3, 4)
        """
        return symmetry_functions(self._check(x), self.cutoff, self.radial, self.angular)

    def _hidden(self, g: Array, deterministic: bool | None = None) -> Array:
        act = ACTIVATIONS[self.activation]
        h = (g - self.g_mean[...]) / self.g_std[...]
        for layer in self.layers:
            h = act(layer(h))
            if self.dropout is not None:
                h = self.dropout(h, deterministic=deterministic)
        return h

    def features(self, x: Array) -> Array:
        """Per-atom features ``(*batch, N, F)`` (the last hidden layer)."""
        return self._hidden(self.descriptors(x))

    def atomic_energies(self, x: Array) -> Array:
        """Per-atom energies ``e(G_i)``, ``(*batch, N)``; their sum over atoms is ``E``.

        Examples
        --------
        >>> import jax, jax.numpy as jnp
        >>> from flax import nnx
        >>> net = AtomisticEnergyNet(rngs=nnx.Rngs(0))
        >>> x = jax.random.normal(jax.random.key(0), (2, 4, 3))
        >>> bool(jnp.allclose(net.atomic_energies(x).sum(-1), net(x), atol=1e-5))
        True
        """
        return self.readout(self.features(x))[..., 0]

    def __call__(self, x: Array) -> Array:
        return apply_readout(self, self.features(x))

    def grad(self, x: Array) -> Array:
        """``dE/dx`` for every configuration, same shape as ``x`` (forces are ``-grad``)."""
        x = self._check(x)
        return jax.grad(lambda z: jnp.sum(self(z)))(x)

    @classmethod
    def data_kwargs(cls, x: Array, energy: Array | None = None, **kwargs: Any) -> dict:
        """Constructor arguments from training data: the descriptor scaling and energy shift
        :meth:`fit_scaling` would set, as numbers (``descriptor_mean``, ``descriptor_std``,
        ``energy_shift``), so every backend builds every network already scaled. ``kwargs``
        are the other constructor arguments.

        Examples
        --------
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (10, 6, 2))
        >>> extra = AtomisticEnergyNet.data_kwargs(x, jax.numpy.full(10, -12.0), d=2)
        >>> sorted(extra), len(extra["descriptor_mean"])
        (['descriptor_mean', 'descriptor_std', 'energy_shift'], 16)
        """
        net = cls(**kwargs, rngs=nnx.Rngs(0))
        net.fit_scaling(x, energy)
        out = {
            "descriptor_mean": [float(v) for v in net.g_mean[...]],
            "descriptor_std": [float(v) for v in net.g_std[...]],
        }
        if energy is not None:
            out["energy_shift"] = float(net.readout.bias[...][0])
        return out

    def fit_scaling(self, x: Array, energy: Array | None = None) -> None:
        """Set ``g_mean`` / ``g_std`` from training configurations ``x (*batch, N, d)``.

        Mean and standard deviation of each descriptor over all configurations and atoms; the
        standard deviation is floored at ``1e-3 (1 + |mean|)`` (a descriptor that does not vary
        in the data is not blown up). With ``energy (*batch,)`` the readout bias is also shifted
        so that the mean predicted energy per atom matches the data's (dropout off), which
        starts a fit at the right energy scale. Call it once, before training.

        Examples
        --------
        >>> import jax, jax.numpy as jnp
        >>> from flax import nnx
        >>> net = AtomisticEnergyNet(d=2, rngs=nnx.Rngs(0))
        >>> x = jax.random.normal(jax.random.key(0), (10, 6, 2))
        >>> net.fit_scaling(x, energy=jnp.full(10, -12.0))
        >>> g = (net.descriptors(x) - net.g_mean[...]) / net.g_std[...]
        >>> bool(jnp.allclose(g.reshape(-1, g.shape[-1]).mean(0), 0.0, atol=1e-4))
        True
        >>> round(float(net(x).mean()), 3)
        -12.0
        """
        g = self.descriptors(x)
        flat = g.reshape(-1, g.shape[-1])
        mean = jnp.mean(flat, axis=0)
        std = jnp.maximum(jnp.std(flat, axis=0), 1e-3 * (1.0 + jnp.abs(mean)))
        self.g_mean.set_value(mean.astype(self.g_mean[...].dtype))
        self.g_std.set_value(std.astype(self.g_std[...].dtype))
        if energy is None:
            return
        energy = jnp.asarray(energy)
        if energy.shape != g.shape[:-2]:
            raise ValueError(f"energy must have shape {g.shape[:-2]}, got {energy.shape}")
        pred = jnp.sum(self.readout(self._hidden(g, deterministic=True))[..., 0], axis=-1)
        shift = jnp.mean(energy - pred) / g.shape[-2]
        self.readout.bias.set_value(self.readout.bias[...] + shift)
