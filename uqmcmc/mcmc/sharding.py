"""Chains and ensemble members spread over devices with ``jax.sharding``.

A one-axis :class:`jax.sharding.Mesh` is laid over the devices and the leading axis of the
per-chain (or per-member) arrays is split along it with a
``NamedSharding(mesh, PartitionSpec(axis))``; everything else (keys before they are split,
step sizes, adaptation state) is replicated. XLA's SPMD partitioner then runs each device's
slice of the ``vmap`` over chains in one program per device.

Devices are those of :func:`jax.devices`: every device of this process, and every device of
every process once :func:`jax.distributed.initialize` has run (the mesh then spans hosts).
When the number of chains (members) is not divisible by the number of devices, the mesh uses
the largest number of devices that divides it (6 chains on 4 devices: 3 devices; 7 chains:
one device), so no chain is padded or duplicated. On CPU, several devices can be simulated
with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX is imported.

Same key, same draws: the per-chain keys are split for all chains before they are placed,
and reductions over chains run on gathered values, so a sharded run consumes exactly the
random numbers of the one-device run. Its draws are bit-identical when XLA compiles each
chain's work independently of how many chains a device holds; on CPU, a sum over more than
about 64 elements per chain (phi^4 from L = 16, a dense layer under ``vmap``) is vectorised
according to the batch and can differ in the last bit, and a chain can then part from its
one-device twin at a rare accept/reject decision (statistically the same chain).

:func:`~uqmcmc.mcmc.run_chains` calls :func:`chain_mesh` (its ``devices`` argument);
:func:`shard_members` places the stacked parameters of ensemble members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "CHAIN_AXIS",
    "MEMBER_AXIS",
    "resolve_devices",
    "usable_count",
    "chain_mesh",
    "leading_sharding",
    "shard_leading",
    "replicate",
    "constrain_leading",
    "constrain_replicated",
    "shard_members",
]

#: Mesh axis name of the chain axis.
CHAIN_AXIS = "chains"
#: Mesh axis name of the ensemble-member axis.
MEMBER_AXIS = "members"

Devices = None | int | Sequence[Any] | Mesh


def resolve_devices(devices: Devices = None) -> list:
    """The devices meant by ``devices``: ``None`` (all of :func:`jax.devices`, global under
    ``jax.distributed``), an ``int`` ``n`` (the first ``n`` of them), a sequence of devices,
    or a :class:`~jax.sharding.Mesh` (its devices, flattened).

    Examples
    --------
    >>> import jax
    >>> resolve_devices(1) == jax.devices()[:1], len(resolve_devices()) == jax.device_count()
    (True, True)
    """
    if devices is None:
        return list(jax.devices())
    if isinstance(devices, Mesh):
        return list(np.asarray(devices.devices).ravel())
    if isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= int(devices) <= len(available):
            raise ValueError(f"devices must lie in [1, {len(available)}], got {devices}")
        return list(available[: int(devices)])
    out = list(devices)
    if not out:
        raise ValueError("devices must not be empty")
    return out


def usable_count(n: int, n_devices: int) -> int:
    """The largest number of devices, at most ``n_devices``, that divides ``n``.

    Examples
    --------
    >>> usable_count(8, 4), usable_count(6, 4), usable_count(7, 4), usable_count(2, 4)
    (4, 3, 1, 2)
    """
    return max(d for d in range(1, min(n, n_devices) + 1) if n % d == 0)


def chain_mesh(n: int, devices: Devices = None, axis: str = CHAIN_AXIS) -> Mesh | None:
    """A one-axis mesh for ``n`` chains (or members), or ``None`` when it would hold a single
    device (nothing to shard).

    The mesh takes the first :func:`usable_count` of the devices; a given ``Mesh`` with a
    single axis is used as it is when its size divides ``n``.

    Examples
    --------
    >>> import jax
    >>> chain_mesh(8, devices=1) is None
    True
    >>> mesh = chain_mesh(8)  # every device; None on a one-device machine
    >>> mesh is None or mesh.shape[CHAIN_AXIS] == jax.device_count()
    True
    """
    if isinstance(devices, Mesh) and len(devices.axis_names) == 1 and n % devices.size == 0:
        return devices if devices.size > 1 else None
    found = resolve_devices(devices)
    count = usable_count(int(n), len(found))
    if count == 1:
        return None
    return Mesh(np.asarray(found[:count]), (axis,))


def leading_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
    """``NamedSharding`` splitting axis 0 of an array along the mesh's (single) axis; a
    0-d array (``ndim = 0``) is replicated.

    Examples
    --------
    >>> import jax
    >>> from jax.sharding import Mesh, PartitionSpec
    >>> mesh = Mesh(jax.devices()[:1], ("chains",))
    >>> leading_sharding(mesh).spec == PartitionSpec("chains")
    True
    >>> leading_sharding(mesh, ndim=0).spec == PartitionSpec()  # a scalar: replicated
    True
    """
    spec = PartitionSpec(mesh.axis_names[0]) if ndim >= 1 else PartitionSpec()
    return NamedSharding(mesh, spec)


def _put(x: Any, sharding: NamedSharding) -> jax.Array:
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    # Across hosts: every process holds the whole (identical) value; each contributes the
    # slices of its own devices.
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard_leading(tree: Any, mesh: Mesh | None) -> Any:
    """Every leaf of ``tree`` split along its leading axis over ``mesh`` (unchanged when
    ``mesh`` is ``None``).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> mesh = chain_mesh(4)
    >>> x = shard_leading({"x": jnp.arange(4.0)}, mesh)["x"]
    >>> len(x.addressable_shards) == (1 if mesh is None else mesh.size)
    True
    """
    if mesh is None:
        return tree
    return jax.tree.map(lambda a: _put(a, leading_sharding(mesh, np.ndim(a))), tree)


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Every leaf of ``tree`` copied whole to every device of ``mesh`` (unchanged when
    ``mesh`` is ``None``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> replicate(jnp.ones(3), chain_mesh(4)).shape
    (3,)
    """
    if mesh is None:
        return tree
    return jax.tree.map(lambda a: _put(a, NamedSharding(mesh, PartitionSpec())), tree)


def constrain_leading(tree: Any, mesh: Mesh | None) -> Any:
    """Inside ``jit``: ``with_sharding_constraint`` of every leaf's leading axis to ``mesh``
    (the identity when ``mesh`` is ``None``).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> jax.jit(lambda x: constrain_leading(x, chain_mesh(4)) * 2)(jnp.ones(4)).tolist()
    [2.0, 2.0, 2.0, 2.0]
    """
    if mesh is None:
        return tree
    return jax.tree.map(
        lambda a: jax.lax.with_sharding_constraint(a, leading_sharding(mesh, np.ndim(a))), tree
    )


def constrain_replicated(tree: Any, mesh: Mesh | None) -> Any:
    """Inside ``jit``: every leaf gathered whole on every device of ``mesh`` (the identity
    when ``mesh`` is ``None``).

    A reduction over chains of a replicated array runs in the same order as on one device,
    so its result is bit-identical to the one-device run (a reduction over a split axis adds
    per-device partial sums, in another order).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> float(jax.jit(lambda x: constrain_replicated(x, chain_mesh(4)).mean())(jnp.ones(4)))
    1.0
    """
    if mesh is None:
        return tree
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, replicated), tree)


def shard_members(state: Any, devices: Devices = None) -> Any:
    """Stacked member parameters (every leaf with a leading member axis, e.g. the ``state``
    of :class:`~uqmcmc.uq.members.Stacked`) split over a mesh of the devices along a
    ``members`` axis (as many devices as divide the number of members; unchanged on one).

    A ``vmap`` over members of the result (:func:`~uqmcmc.uq.members.member_apply`) then
    evaluates each device's members on that device; reductions over members (ensemble
    mean and variance) gather across devices.

    Examples
    --------
    >>> import jax
    >>> from uqmcmc.nets import MLP
    >>> from uqmcmc.uq.members import Stacked, init_members, member_apply
    >>> _, eval_def, state = init_members(lambda r: MLP(1, (4,), rngs=r), jax.random.key(0), 4)
    >>> sharded = shard_members(state)
    >>> out = member_apply(Stacked(eval_def, sharded), lambda m, x: m(x), jax.numpy.zeros((3, 1)))
    >>> out.shape, len(out.sharding.device_set) == min(4, jax.device_count())
    ((4, 3), True)
    """
    n = int(jax.tree.leaves(state)[0].shape[0])
    return shard_leading(state, chain_mesh(n, devices, MEMBER_AXIS))
