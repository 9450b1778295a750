"""The 2-D lattice phi^4 model (as in Tzivrailis, Rosso, Kawasaki, "Uncertainty in AI-driven Monte
Carlo simulations", arXiv:2506.14594): exact action, gradient, local updates, observables and
the derived quantities with their errors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc.stats import jackknife
from uqmcmc.targets.base import Derived

Array = jax.Array

#: Posterior dimension names of the non-scalar observables.
OBSERVABLE_DIMS = {"G": ["r"]}


def _neighbour_sum(phi: Array) -> Array:
    """Sum of the four nearest neighbours of every site (periodic), batched over leading axes."""
    return (
        jnp.roll(phi, 1, axis=-1)
        + jnp.roll(phi, -1, axis=-1)
        + jnp.roll(phi, 1, axis=-2)
        + jnp.roll(phi, -1, axis=-2)
    )


class Phi4:
    r"""Real scalar phi^4 theory on an ``L x L`` periodic lattice.

    .. math::
        S[\phi] = \sum_x \Big[-\beta \sum_{k=1,2} \phi_x \phi_{x+e_k} + \phi_x^2
                  + g(\phi_x^2 - 1)^2\Big]

    Every method takes fields of shape ``(..., L, L)`` and is batched over the leading axes and
    jit-able. At ``g = 1`` the transition is near ``beta = 0.68``.

    Parameters
    ----------
    L : int
        Linear lattice size, at least 2.
    beta : float
        Hopping coupling (finite).
    g : float
        Quartic coupling, ``g >= 0``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> t = Phi4(L=4, beta=0.5, g=1.0)
    >>> float(t.action(jnp.ones((4, 4))))  # per site: -2 beta + 1 + 0
    0.0
    >>> t.grad(jnp.zeros((4, 4))).shape
    (4, 4)
    """

    def __init__(self, L: int, beta: float, g: float):
        if isinstance(L, bool) or int(L) != L or L < 2:
            raise ValueError(f"L must be an integer >= 2, got {L!r}")
        for name, value in (("beta", beta), ("g", g)):
            if not math.isfinite(float(value)):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if g < 0:
            raise ValueError(f"g must be >= 0 (the action is unbounded below otherwise), got {g!r}")
        self.L = int(L)
        self.beta = float(beta)
        self.g = float(g)

    # -- configuration space -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one configuration, ``(L, L)``."""
        return (self.L, self.L)

    @property
    def volume(self) -> int:
        """Number of sites ``V = L**2``."""
        return self.L * self.L

    @property
    def params(self) -> dict:
        """The parameters, as recorded in InferenceData attrs."""
        return {"target": "Phi4", "L": self.L, "beta": self.beta, "g": self.g}

    def __repr__(self) -> str:
        return f"Phi4(L={self.L}, beta={self.beta}, g={self.g})"

    def initial_positions(self, key: Array, n: int) -> Array:
        """``n`` hot starts: independent standard-normal fields, ``(n, L, L)``.

        Examples
        --------
        >>> import jax
        >>> Phi4(4, 0.5, 1.0).initial_positions(jax.random.key(0), 3).shape
        (3, 4, 4)
        """
        return jax.random.normal(key, (n, *self.shape))

    #: The surrogate the compare workflow trains unless told otherwise: ``grad S`` by an RCNN,
    #: as in Tzivrailis et al.
    default_surrogate = "gradient"

    def default_network(self, surrogate: str) -> Any:
        """The network of a surrogate of ``surrogate`` (``"gradient"``: the RCNN of ``grad S``;
        ``"energy"``: :class:`~uqmcmc.nets.EnergyNet`, the same layers summed into ``S``),
        as a :class:`~uqmcmc.uq.registry.Network`.

        Examples
        --------
        >>> Phi4(4, 0.5, 1.0).default_network("energy").cls.__name__
        'EnergyNet'
        """
        from uqmcmc.nets import EnergyNet
        from uqmcmc.uq.registry import Network

        if surrogate == "gradient":
            return Network.default()
        return Network(EnergyNet, {}, small={"channels": 8, "depth": 1})

    def _check(self, phi: Array) -> Array:
        phi = jnp.asarray(phi)
        if phi.shape[-2:] != self.shape:
            raise ValueError(f"field must have trailing shape {self.shape}, got {phi.shape}")
        return phi

    # -- action and derivatives ----------------------------------------------------------
    def site_potential(self, phi: Array) -> Array:
        """On-site part ``phi^2 + g (phi^2 - 1)^2`` elementwise."""
        phi2 = phi * phi
        return phi2 + self.g * (phi2 - 1.0) ** 2

    def action(self, phi: Array) -> Array:
        """The action ``S[phi]``, shape ``phi.shape[:-2]``."""
        phi = self._check(phi)
        hop = phi * (jnp.roll(phi, -1, axis=-1) + jnp.roll(phi, -1, axis=-2))
        return jnp.sum(-self.beta * hop + self.site_potential(phi), axis=(-2, -1))

    def grad(self, phi: Array) -> Array:
        """Analytic ``dS/dphi_x = -beta sum_nn phi + 2 phi + 4 g phi (phi^2 - 1)``."""
        phi = self._check(phi)
        return -self.beta * _neighbour_sum(phi) + 2.0 * phi + 4.0 * self.g * phi * (phi * phi - 1)

    def local_delta(self, phi: Array, proposed: Array) -> Array:
        """Per-site action change if site ``x`` alone moved from ``phi[x]`` to ``proposed[x]``.

        Sites of one checkerboard colour do not interact, so for a proposal that moves only one
        colour the total change is the sum of these terms over that colour.

        Examples
        --------
        >>> import jax, jax.numpy as jnp
        >>> t = Phi4(4, 0.6, 1.0)
        >>> phi = jax.random.normal(jax.random.key(0), (4, 4))
        >>> new = phi.at[1, 2].set(0.3)
        >>> d = t.local_delta(phi, jnp.full((4, 4), 0.3))[1, 2]
        >>> bool(jnp.allclose(d, t.action(new) - t.action(phi), atol=1e-5))
        True
        """
        phi = self._check(phi)
        proposed = jnp.broadcast_to(jnp.asarray(proposed), phi.shape)
        hop = -self.beta * (proposed - phi) * _neighbour_sum(phi)
        return hop + self.site_potential(proposed) - self.site_potential(phi)

    # -- observables ---------------------------------------------------------------------
    def observables(self, phi: Array) -> dict[str, Array]:
        """Per-configuration observables, batched over leading axes.

        Returns
        -------
        dict with
            ``m`` magnetisation ``sum(phi)/V``; ``abs_m``, ``m2``, ``m4``;
            ``action_density`` ``S/V``; ``sd`` the Schwinger-Dyson term
            ``(1/V) sum_x phi_x dS/dphi_x`` (exact expectation 1); ``G`` the two-point function
            ``G(r) = (1/V) sum_x phi_x phi_{x+r}`` for ``r = 0..L//2`` averaged over both axes
            (dim ``r``); ``Gp1`` the lowest-momentum correlator ``|phi(p_min)|^2 / V``
            averaged over both axes, used by the second-moment correlation length.
        """
        phi = self._check(phi)
        V = self.volume
        m = jnp.sum(phi, axis=(-2, -1)) / V
        m2 = m * m
        rs = range(self.L // 2 + 1)
        G = jnp.stack(
            [
                0.5
                * jnp.mean(
                    phi * (jnp.roll(phi, -r, axis=-1) + jnp.roll(phi, -r, axis=-2)), (-2, -1)
                )
                for r in rs
            ],
            axis=-1,
        )
        phase = jnp.exp(2j * jnp.pi * jnp.arange(self.L) / self.L)
        p_x = jnp.sum(jnp.sum(phi, axis=-2) * phase, axis=-1)
        p_y = jnp.sum(jnp.sum(phi, axis=-1) * phase, axis=-1)
        gp1 = 0.5 * (jnp.abs(p_x) ** 2 + jnp.abs(p_y) ** 2) / V
        return {
            "m": m,
            "abs_m": jnp.abs(m),
            "m2": m2,
            "m4": m2 * m2,
            "action_density": self.action(phi) / V,
            "sd": jnp.mean(phi * self.grad(phi), axis=(-2, -1)),
            "G": G,
            "Gp1": gp1,
        }

    observable_dims = OBSERVABLE_DIMS

    #: Observables that :func:`uqmcmc.diagnostics.compare_to_exact` compares by default.
    compared_observables = ("abs_m", "m2", "m4", "action_density", "sd", "chi_abs", "binder")

    #: Observables whose whole distribution is compared with the exact chain's.
    distribution_observables = ("abs_m", "action_density")

    #: Observables a compare report leads with: ``sd`` (its bias grows like the square of
    #: the noise of Delta S), ``|M|`` (the slowest) and the action density.
    headline_observables = ("sd", "abs_m", "action_density")

    # -- ensemble-level estimators -------------------------------------------------------
    def derived(self, draws: Mapping[str, np.ndarray], n_blocks: int | None = None) -> dict:
        """Susceptibility, Binder cumulant and second-moment correlation length with errors.

        Parameters
        ----------
        draws
            Mapping with ``abs_m``, ``m2``, ``m4`` and ``Gp1`` of shape ``(chain, draw)``, e.g.
            ``idata.posterior`` or a dict of arrays.

        Returns
        -------
        ``{"chi_abs": (mean, err), "binder": ..., "xi": ...}`` by block jackknife (the
        quantities of :data:`DERIVED`).

        Examples
        --------
        >>> import numpy as np
        >>> m = np.random.default_rng(0).normal(size=(4, 500))
        >>> draws = {"abs_m": abs(m), "m2": m**2, "m4": m**4, "Gp1": np.full((4, 500), 0.5)}
        >>> sorted(Phi4(4, 0.5, 1.0).derived(draws))
        ['binder', 'chi_abs', 'xi']
        """
        attrs = {"L": self.L}
        return {
            name: jackknife(spec.make(attrs), [np.asarray(draws[i]) for i in spec.inputs], n_blocks)
            for name, spec in DERIVED.items()
        }


def susceptibility(abs_m: float, m2: float, volume: int) -> float:
    """``chi = V (<M^2> - <|M|>^2)`` from the two means.

    Examples
    --------
    >>> round(susceptibility(abs_m=0.5, m2=0.3, volume=16), 6)
    0.8
    """
    return volume * (m2 - abs_m**2)


def binder(m2: float, m4: float) -> float:
    """Binder cumulant ``U = 1 - <M^4> / (3 <M^2>^2)`` from the two means.

    ``U = 2/3`` deep in the ordered phase (``M^4 = (M^2)^2``), ``U = 0`` for a Gaussian ``M``
    (``<M^4> = 3 <M^2>^2``, the disordered phase). Errors come from
    :func:`uqmcmc.stats.jackknife` over the two series (as :meth:`Phi4.derived` does).

    Examples
    --------
    >>> round(binder(m2=0.25, m4=0.0625), 4), round(binder(m2=0.25, m4=3 * 0.0625), 4)
    (0.6667, 0.0)
    """
    return 1.0 - m4 / (3.0 * m2**2)


def correlation_length(g0: float, gp1: float, L: int) -> float:
    """Second-moment correlation length from ``G~(0) = V<M^2>`` and ``G~(p_min)``.

    ``xi^2 = (G~(0)/G~(p) - 1) / (4 sin^2(p/2))`` with ``p = 2 pi / L``; returns ``xi``
    (``nan`` when the ratio is below one, which happens only from noise).

    Examples
    --------
    >>> round(correlation_length(g0=4.0, gp1=2.0, L=8), 3)
    1.307
    >>> correlation_length(g0=1.0, gp1=2.0, L=8)
    nan
    """
    ratio = g0 / gp1 - 1.0
    xi2 = ratio / (4.0 * np.sin(np.pi / L) ** 2)
    return float(np.sqrt(xi2)) if xi2 >= 0 else float("nan")


def _lattice_size(attrs: Mapping[str, Any], what: str) -> int:
    if "L" not in attrs:
        raise ValueError(f"{what} needs the lattice size: the run's attrs have no 'L'")
    return int(attrs["L"])


#: The derived phi^4 quantities, from the posterior means and a run's attrs alone.
DERIVED: dict[str, Derived] = {
    "chi_abs": Derived(
        ("abs_m", "m2"),
        lambda a: lambda abs_m, m2: susceptibility(abs_m, m2, _lattice_size(a, "chi_abs") ** 2),
    ),
    "binder": Derived(("m2", "m4"), lambda a: binder),
    "xi": Derived(
        ("m2", "Gp1"),
        lambda a: (
            lambda m2, gp1: correlation_length(
                m2 * _lattice_size(a, "xi") ** 2, gp1, _lattice_size(a, "xi")
            )
        ),
    ),
}

Phi4.derived_quantities = DERIVED
