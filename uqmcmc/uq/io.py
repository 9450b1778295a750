"""Save and load fitted backends without pickle: arrays in ``.npz``, metadata in JSON.

A saved backend is a directory with two files:

``arrays.npz``
    Numeric arrays only, read back with ``np.load(..., allow_pickle=False)``, so loading can
    never execute code.
``meta.json``
    ``kind`` (the backend class name), ``format_version``, the uqmcmc and library versions,
    the name, shape and dtype of every array, and whatever the backend adds (constructor
    arguments, the network's :class:`ModelSpec`, ...).

Networks are rebuilt from a :class:`ModelSpec` (class name + JSON constructor kwargs): the class
is looked up among uqmcmc's own networks, classes registered with :func:`register_module`, or a
class the caller passes, never imported from a name found in a file. The rebuilt module's
variables are then replaced by the saved arrays (:func:`state_arrays` / :func:`fill_state`),
with every name and shape checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from uqmcmc._meta import versions

__all__ = [
    "FORMAT_VERSION",
    "ModelSpec",
    "class_name",
    "fill_state",
    "load_state",
    "provenance",
    "register_module",
    "resolve_class",
    "restore_module",
    "save_state",
    "state_arrays",
]

#: Version of the on-disk layout; :func:`load_state` refuses newer ones.
FORMAT_VERSION = 1

ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"

#: uqmcmc's own networks, importable by name without any registry step.
_BUILTIN = {
    "uqmcmc.nets.mlp.MLP": ("uqmcmc.nets.mlp", "MLP"),
    "uqmcmc.nets.rcnn.RCNN": ("uqmcmc.nets.rcnn", "RCNN"),
    "uqmcmc.nets.energy.EnergyNet": ("uqmcmc.nets.energy", "EnergyNet"),
    "uqmcmc.nets.atomistic.AtomisticEnergyNet": ("uqmcmc.nets.atomistic", "AtomisticEnergyNet"),
}
_REGISTRY: dict[str, type] = {}
_PROVENANCE: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "uqmcmc_provenance", default=None
)


@contextlib.contextmanager
def provenance(**record: Any) -> Iterator[None]:
    """Within the block, every :func:`save_state` records ``record`` as ``meta["provenance"]``.

    A workflow wraps its run in it (the settings and seed that made the saved backends), so a
    saved backend says where it came from.

    Examples
    --------
    >>> import json, pathlib, tempfile, numpy as np
    >>> with provenance(seed=3, settings={"epochs": 2}):
    ...     d = save_state(tempfile.mkdtemp(), {"w": np.ones(1)}, {"kind": "Demo"})
    >>> json.loads((d / META_FILE).read_text())["provenance"]
    {'seed': 3, 'settings': {'epochs': 2}}
    """
    token = _PROVENANCE.set(json.loads(json.dumps(record, default=str)))
    try:
        yield
    finally:
        _PROVENANCE.reset(token)


# -- directory format ---------------------------------------------------------------------
def save_state(path: str | Path, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write ``arrays`` (name -> numeric array) and JSON ``meta`` to the directory ``path``.

    Parameters
    ----------
    path
        Directory, created if needed; existing files of the same names are overwritten.
    arrays
        Numeric arrays (JAX or NumPy); object arrays and PRNG key arrays are refused.
    meta
        JSON-serialisable metadata; must contain ``kind`` (a string, usually the class name).

    Returns
    -------
    The directory as a ``Path``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> _ = save_state(d, {"w": np.ones(3)}, {"kind": "Demo", "alpha": 0.5})
    >>> arrays, meta = load_state(d, "Demo")
    >>> arrays["w"].tolist(), meta["alpha"]
    ([1.0, 1.0, 1.0], 0.5)
    """
    if not isinstance(meta.get("kind"), str) or not meta["kind"]:
        raise ValueError(f"meta must contain a non-empty string 'kind', got {meta.get('kind')!r}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"array names must be non-empty strings, got {name!r}")
        if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            raise ValueError(f"array {name!r} is a PRNG key array: store jax.random.key_data")
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"array {name!r} has non-numeric dtype {arr.dtype}")
        out[name] = arr
    record = _PROVENANCE.get()
    full_meta = {
        **({"provenance": record} if record is not None and "provenance" not in meta else {}),
        **meta,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in out.items()},
    }
    try:
        text = json.dumps(full_meta, indent=1, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"meta must be JSON-serialisable: {err}") from None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    np.savez(path / ARRAYS_FILE, **out)
    (path / META_FILE).write_text(text)
    return path


def load_state(path: str | Path, expected_kind: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read what :func:`save_state` wrote, checking kind, version, names and shapes.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory or a file is missing.
    ValueError
        If the saved ``kind`` is not ``expected_kind``, the format is newer than this uqmcmc,
        or the arrays do not match the names, shapes and dtypes recorded in the metadata.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> d = save_state(tempfile.mkdtemp(), {"w": np.zeros((2, 3))}, {"kind": "Demo"})
    >>> arrays, meta = load_state(d, "Demo")
    >>> arrays["w"].shape, meta["format_version"], sorted(meta["arrays"])
    ((2, 3), 1, ['w'])
    >>> load_state(d, "DeepEnsemble")
    Traceback (most recent call last):
    ...
    ValueError: ... holds a 'Demo', expected a 'DeepEnsemble'
    """
    path = Path(path)
    meta_file, arrays_file = path / META_FILE, path / ARRAYS_FILE
    if not path.is_dir():
        raise FileNotFoundError(f"no saved backend at {str(path)!r} (not a directory)")
    for name in (META_FILE, ARRAYS_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{str(path)!r} is missing {name}: not a saved uqmcmc state")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(meta_file)!r} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{str(meta_file)!r} must hold a JSON object, got a {type(meta).__name__}")
    kind = meta.get("kind")
    if kind != expected_kind:
        raise ValueError(f"{str(path)!r} holds a {kind!r}, expected a {expected_kind!r}")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version:
        raise ValueError(
            f"{str(meta_file)!r}: format_version must be an integer >= 1, got {version!r}"
        )
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has format_version {version!r}; this uqmcmc reads up to "
            f"{FORMAT_VERSION}"
        )
    recorded = meta.get("arrays", {})
    if not isinstance(recorded, dict) or not all(
        isinstance(info, dict)
        and isinstance(info.get("shape"), list)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in info["shape"])
        and isinstance(info.get("dtype"), str)
        for info in recorded.values()
    ):
        raise ValueError(
            f"{str(meta_file)!r}: field 'arrays' must map each array name to "
            '{"shape": [non-negative integers], "dtype": "<name>"}'
        )
    try:
        with np.load(arrays_file, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"{str(arrays_file)!r} is damaged or truncated ({type(err).__name__}: {err})"
        ) from None
    if set(recorded) != set(arrays):
        missing, extra = sorted(set(recorded) - set(arrays)), sorted(set(arrays) - set(recorded))
        raise ValueError(f"{str(arrays_file)!r}: arrays missing {missing}, unexpected {extra}")
    for k, info in recorded.items():
        if list(arrays[k].shape) != info["shape"] or str(arrays[k].dtype) != info["dtype"]:
            raise ValueError(
                f"{str(arrays_file)!r}: array {k!r} is {arrays[k].dtype}{list(arrays[k].shape)}, "
                f"metadata says {info['dtype']}{info['shape']}"
            )
        if arrays[k].dtype.kind == "f" and not np.all(np.isfinite(arrays[k])):
            raise ValueError(f"{str(arrays_file)!r}: array {k!r} has non-finite values")
    return arrays, meta


# -- nnx state <-> named arrays -----------------------------------------------------------
def _path_name(path: tuple) -> str:
    return "/".join(str(p) for p in path)


def _saved(variable: Any) -> bool:
    """RNG streams are not saved: they are reseeded explicitly wherever randomness is used."""
    return not isinstance(variable, nnx.RngState)


def state_arrays(state: nnx.State | nnx.Module, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten an nnx state (or a module's state) to ``{prefix + "a/b/0/kernel": array}``.

    RNG stream variables are skipped. Stacked states (a leading member axis) work unchanged.

    Examples
    --------
    >>> from flax import nnx
    >>> sorted(state_arrays(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), "net/"))
    ['net/bias', 'net/kernel']
    """
    if isinstance(state, nnx.Module):
        state = nnx.state(state)
    return {
        prefix + _path_name(path): np.asarray(var.get_value())
        for path, var in nnx.to_flat_state(state)
        if _saved(var)
    }


def fill_state(
    template: nnx.State, arrays: Mapping[str, Any], prefix: str = "", *, what: str = "state"
) -> nnx.State:
    """Return ``template`` with every saved variable replaced by ``arrays[prefix + name]``.

    The template fixes the structure (build the module, or the stacked ensemble, first); names
    and shapes must match exactly, and arrays under ``prefix`` that the template lacks are an
    error too. Use ``nnx.update(module, filled)`` or ``nnx.merge`` afterwards.

    Examples
    --------
    >>> import numpy as np
    >>> from flax import nnx
    >>> lin = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    >>> arrays = {"bias": np.ones(3, np.float32), "kernel": np.zeros((2, 3), np.float32)}
    >>> nnx.update(lin, fill_state(nnx.state(lin), arrays))
    >>> lin.bias[...].tolist()
    [1.0, 1.0, 1.0]
    """
    flat = []
    used = set()
    for path, var in nnx.to_flat_state(template):
        if not _saved(var):
            flat.append((path, var))
            continue
        name = prefix + _path_name(path)
        if name not in arrays:
            raise ValueError(f"{what}: saved arrays lack {name!r}")
        value = np.asarray(arrays[name])
        expected = np.shape(var.get_value())
        if value.shape != expected:
            raise ValueError(
                f"{what}: {name!r} has shape {value.shape}, the network expects {expected}"
            )
        flat.append((path, var.replace(jnp.asarray(value, dtype=var.get_value().dtype))))
        used.add(name)
    extra = sorted(k for k in arrays if k.startswith(prefix) and k not in used)
    if extra:
        raise ValueError(f"{what}: saved arrays the network does not have: {extra}")
    return nnx.from_flat_state(flat)


def restore_module(
    build: Callable[[nnx.Rngs], nnx.Module], arrays: Mapping[str, Any], prefix: str = ""
) -> nnx.Module:
    """Build a module with ``build(rngs)`` and load its variables from ``arrays`` (eval mode).

    Examples
    --------
    >>> from flax import nnx
    >>> from uqmcmc.nets import MLP
    >>> build = lambda rngs: MLP(1, (4,), rngs=rngs)
    >>> saved = state_arrays(build(nnx.Rngs(3)), "net/")
    >>> net = restore_module(build, saved, "net/")
    >>> bool((net.readout.kernel[...] == saved["net/readout/kernel"]).all())
    True
    """
    module = build(nnx.Rngs(0))
    nnx.update(module, fill_state(nnx.state(module), arrays, prefix, what=type(module).__name__))
    module.eval()
    return module


# -- rebuilding networks ------------------------------------------------------------------
def class_name(cls: type) -> str:
    """The dotted name a class is recorded under, ``module.QualName``.

    Examples
    --------
    >>> from uqmcmc.nets import RCNN
    >>> class_name(RCNN)
    'uqmcmc.nets.rcnn.RCNN'
    """
    return f"{cls.__module__}.{cls.__qualname__}"


def register_module(cls: type) -> type:
    """Allow :func:`resolve_class` (and so every backend's ``load``) to rebuild ``cls`` by name.

    Usable as a class decorator on a user's own network.

    Examples
    --------
    >>> from uqmcmc.nets import MLP
    >>> @register_module
    ... class Wide(MLP):  # a user's own network, following the convention
    ...     pass
    >>> resolve_class(class_name(Wide)) is Wide
    True
    """
    if not isinstance(cls, type):
        raise ValueError(f"register_module expects a class, got {cls!r}")
    _REGISTRY[class_name(cls)] = cls
    return cls


def resolve_class(name: str, cls: type | None = None) -> type:
    """The network class recorded as ``name``: ``cls`` if given (names must agree), a
    registered class, or one of uqmcmc's own networks. Nothing else is ever imported.

    Examples
    --------
    >>> resolve_class("uqmcmc.nets.mlp.MLP").__name__
    'MLP'
    >>> resolve_class("os.system")
    Traceback (most recent call last):
    ...
    ValueError: network class 'os.system' is not one of uqmcmc's networks: ...
    """
    if cls is not None:
        if class_name(cls) != name:
            raise ValueError(
                f"model_cls is {class_name(cls)!r} but the file was saved with {name!r}"
            )
        return cls
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BUILTIN:
        module, attr = _BUILTIN[name]
        return getattr(importlib.import_module(module), attr)
    raise ValueError(
        f"network class {name!r} is not one of uqmcmc's networks: pass model_cls=<the class> "
        "to load, or decorate it with uqmcmc.uq.io.register_module"
    )


class ModelSpec(NamedTuple):
    """How to build a network: ``cls(**kwargs, rngs=rngs)``, kwargs JSON-serialisable.

    Examples
    --------
    >>> from flax import nnx
    >>> from uqmcmc.nets.mlp import MLP
    >>> spec = ModelSpec.of(MLP, {"in_features": 1, "hidden": [8]})
    >>> spec.to_json()["cls"]
    'uqmcmc.nets.mlp.MLP'
    >>> ModelSpec.from_json(spec.to_json()).build(nnx.Rngs(0)).readout.in_features
    8
    """

    cls: type
    kwargs: dict

    @classmethod
    def of(cls, model_cls: type, kwargs: Mapping[str, Any] | None = None) -> ModelSpec:
        """Check and build a spec (kwargs must survive a JSON round trip)."""
        if not isinstance(model_cls, type) or not issubclass(model_cls, nnx.Module):
            raise ValueError(f"model_cls must be an nnx.Module subclass, got {model_cls!r}")
        kwargs = dict(kwargs or {})
        if "rngs" in kwargs:
            raise ValueError("model_kwargs must not contain 'rngs' (the backend seeds members)")
        try:
            kwargs = json.loads(json.dumps(kwargs))
        except TypeError as err:
            raise ValueError(f"model_kwargs must be JSON-serialisable: {err}") from None
        return cls(model_cls, kwargs)

    def build(self, rngs: nnx.Rngs | int | jax.Array) -> nnx.Module:
        """A fresh module; ``rngs`` may be an ``nnx.Rngs``, a seed or a key."""
        if not isinstance(rngs, nnx.Rngs):
            rngs = nnx.Rngs(rngs)
        return self.cls(**self.kwargs, rngs=rngs)

    def to_json(self) -> dict:
        return {"cls": class_name(self.cls), "kwargs": self.kwargs}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], model_cls: type | None = None) -> ModelSpec:
        return cls(resolve_class(data["cls"], model_cls), dict(data["kwargs"]))
