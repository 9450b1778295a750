"""The on-disk checkpoint of a chunked run of :func:`~uqmcmc.mcmc.run_chains`.

A checkpoint is a folder holding

``state.npz``
    After every chunk, warm-up and sampling alike: the kernel states, the adaptation state and
    the step size (the pytree the sampling loop passes), the phase (``warmup`` or ``sample``)
    and the index of the last finished chunk of that phase, the wall time so far, and the
    fingerprint of the run (its settings and key).
``draws-00000.npz``, ``draws-00001.npz``, ...
    The records of each sampling chunk (``{"obs": ..., "stats": ...}``, draws on the leading
    axis), each written BEFORE the state that says its chunk is done.

Every file is written under a temporary name in the folder and renamed into place
(``os.replace``): a run stopped at any moment (Ctrl-C, a killed job) leaves the state of its
last finished chunk, and the draws it points to, complete. Files are ``np.savez`` archives of
the flattened pytree leaves, keyed by their path (``tree/states/position``, ``obs/abs_m``),
and are read with ``allow_pickle=False``: nothing is pickled. A PRNG-key leaf is stored as its
key data.

A resume reads the tree structure from the live run (its freshly built initial states), not
from the file, and checks every leaf's shape and dtype against it; a file that cannot be read,
or holds other leaves, is a ``ValueError`` naming the file and what differs. A state whose
fingerprint differs from the run's (another key, another number of steps, ...) is refused the
same way, naming the setting. The algorithm and the target themselves are not fingerprinted
beyond the shapes and dtypes of what they record: resuming with another kernel is the caller's
mistake to avoid.

One run at a time per folder. On several hosts every process writes the same (replicated)
content under its own temporary name, so the folder must be shared or per host.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc._interrupts import held_interrupt

__all__ = ["FORMAT", "STATE", "Checkpoint", "Saved", "draws_name"]

#: Written into every state file; a state of another format is refused.
FORMAT = "uqmcmc-checkpoint/1"
#: The state file's name in the checkpoint folder.
STATE = "state.npz"
#: The phases of a run, in order.
PHASES = ("warmup", "sample")

_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def draws_name(index: int) -> str:
    """The file name of sampling chunk ``index``'s records.

    Examples
    --------
    >>> draws_name(0), draws_name(12)
    ('draws-00000.npz', 'draws-00012.npz')
    """
    return f"draws-{int(index):05d}.npz"


class Saved(NamedTuple):
    """What a checkpoint's state file holds, read back by :meth:`Checkpoint.resume`.

    phase
        ``"warmup"`` or ``"sample"``: the phase of the last finished chunk.
    chunk
        The index of that chunk in its phase: the run continues with the next one.
    tree
        The saved pytree (kernel states, adaptation state, step size), leaves as JAX arrays
        shaped, typed and structured like the live run's.
    wall_time
        Seconds spent by the run up to that chunk, over every session.

    Examples
    --------
    >>> Saved._fields
    ('phase', 'chunk', 'tree', 'wall_time')
    """

    phase: str
    chunk: int
    tree: Any
    wall_time: float


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _named_leaves(tree: Any) -> tuple[list[tuple[str, Any]], Any]:
    """``[(path name, leaf)]`` (``states/position``) and the tree structure."""
    leaves, treedef = jax.tree.flatten_with_path(tree)
    named = [("/".join(_key_name(k) for k in path) or "value", leaf) for path, leaf in leaves]
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"the leaves of the tree do not have distinct names: {names}")
    return named, treedef


def _is_key(spec: Any) -> bool:
    return jax.dtypes.issubdtype(spec.dtype, jax.dtypes.prng_key)


def _stored(spec: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype a leaf of ``spec`` (a ``ShapeDtypeStruct``) is stored with."""
    if _is_key(spec):
        spec = jax.eval_shape(jax.random.key_data, spec)
    return tuple(spec.shape), np.dtype(spec.dtype)


def _to_host(leaf: Any) -> np.ndarray:
    """The whole value of a leaf on this host (gathered when it is split over hosts)."""
    if isinstance(leaf, jax.Array):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if not leaf.is_fully_addressable:
            from jax.experimental import multihost_utils

            leaf = multihost_utils.process_allgather(leaf, tiled=True)
    out = np.asarray(leaf)
    if out.dtype.hasobject:
        raise TypeError(f"a checkpoint stores numbers and strings only, got dtype {out.dtype}")
    return out


def _show(value: np.ndarray | None) -> str:
    if value is None:
        return "missing"
    return repr(value.item() if value.ndim == 0 else value.tolist())


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or (a.dtype.kind in "US") != (b.dtype.kind in "US"):
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc"))


def _describe(spec_tree: Any) -> str:
    """``name dtype shape`` of every leaf of a tree of ``ShapeDtypeStruct``."""
    named, _ = _named_leaves(spec_tree)
    return "; ".join(f"{name} {np.dtype(s.dtype).name}{tuple(s.shape)}" for name, s in named)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez`` into ``path`` atomically: a temporary file in the same folder, synced,
    then ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{jax.process_index()}")
    with held_interrupt():  # Ctrl-C mid-archive would leave a half-closed zip and an odd error
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)


def _read(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path`` (no pickle); a ``ValueError`` naming the file
    when it is missing or cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ValueError(f"checkpoint file {str(path)!r} is missing") from None
    except _READ_ERRORS as err:
        raise ValueError(
            f"checkpoint file {str(path)!r} cannot be read ({type(err).__name__}: {err}); "
            "it is corrupt or truncated: remove the checkpoint folder to start again"
        ) from None


def _check_leaves(
    path: Path,
    arrays: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple],
    others: tuple[str, ...] = (),
) -> None:
    """Every name of ``expected`` is in ``arrays`` with that ``(shape, dtype)``, and nothing
    else but names starting with one of ``others``."""
    where = f"checkpoint file {str(path)!r}"
    for name, (shape, dtype) in expected.items():
        if name not in arrays:
            raise ValueError(f"{where} lacks {name!r}, which this run has")
        got = arrays[name]
        if got.shape != tuple(shape) or got.dtype != dtype:
            raise ValueError(
                f"{where}: {name!r} is {got.dtype.name}{got.shape}, this run has "
                f"{np.dtype(dtype).name}{tuple(shape)}"
            )
    extra = [n for n in arrays if n not in expected and not (others and n.startswith(others))]
    if extra:
        raise ValueError(f"{where} holds {extra[:3]}, which this run does not have")


class Checkpoint:
    """The checkpoint folder of one chunked run: its state file and its draws files.

    The sampling loop (:func:`~uqmcmc.mcmc.sampling_loop.sample_chains`) calls
    :meth:`resume` once with its live pytree, then :meth:`save_draws` and :meth:`save` after
    every chunk, and :meth:`read_draws` at the end.

    Parameters
    ----------
    folder
        The folder (created if absent) holding ``state.npz`` and ``draws-*.npz``.
    fingerprint
        The settings that make the run what it is, ``{name: value}`` (numbers, strings,
        arrays, PRNG keys): a state written with other values is refused by :meth:`resume`.

    Examples
    --------
    >>> import tempfile, jax.numpy as jnp
    >>> folder = tempfile.mkdtemp()
    >>> ckpt = Checkpoint(folder, {"num_steps": 100})
    >>> live = {"x": jnp.zeros(3)}
    >>> ckpt.resume(live, {"warmup": 2, "sample": 2}) is None  # nothing saved yet
    True
    >>> ckpt.save("warmup", 0, {"x": jnp.ones(3)}, wall_time=1.5)
    >>> saved = Checkpoint(folder, {"num_steps": 100}).resume(live, {"warmup": 2, "sample": 2})
    >>> saved.phase, saved.chunk, saved.tree["x"].tolist(), saved.wall_time
    ('warmup', 0, [1.0, 1.0, 1.0], 1.5)
    >>> Checkpoint(folder, {"num_steps": 200}).resume(live, {"warmup": 2, "sample": 2})
    Traceback (most recent call last):
        ...
    ValueError: checkpoint file '.../state.npz' was written by another run: num_steps differs ...
    """

    def __init__(self, folder: str | os.PathLike, fingerprint: Mapping[str, Any]):
        self.folder = Path(folder)
        try:
            if self.folder.exists() and not self.folder.is_dir():
                raise NotADirectoryError("it exists and is not a folder")
            self.folder.mkdir(parents=True, exist_ok=True)
            os.rmdir(tempfile.mkdtemp(prefix=".uqmcmc-probe-", dir=self.folder))
        except OSError as err:
            reason = err.strerror or str(err)
            raise ValueError(
                f"checkpoint {str(self.folder)!r} cannot be written: {reason}"
            ) from None
        self.fingerprint = {str(k): _to_host(v) for k, v in fingerprint.items()}
        self._treedef: Any = None
        self._records: Any = None

    @property
    def state_path(self) -> Path:
        """``folder/state.npz``."""
        return self.folder / STATE

    def draws_path(self, index: int) -> Path:
        """``folder/draws-<index>.npz``: the records of sampling chunk ``index``."""
        return self.folder / draws_name(index)

    def resume(
        self, live: Any, phases: Mapping[str, int], records: Any = None, like: Any = None
    ) -> Saved | None:
        """Bind the live run and read its saved progress, if any.

        Parameters
        ----------
        live
            The pytree :meth:`save` will be given (e.g. the freshly built initial states):
            the structure, shapes and dtypes a saved state must have.
        phases
            Number of chunks per phase, ``{"warmup": n_warm, "sample": n_draw}``: the saved
            phase and chunk index must lie in it.
        records
            The records of ONE draw as a tree of ``jax.ShapeDtypeStruct`` (leading axis: the
            chains), when the run keeps draws: part of the fingerprint, and what
            :meth:`save_draws` writes and :meth:`read_draws` checks.
        like
            The types the restored leaves take, a tree like ``live`` of
            ``jax.ShapeDtypeStruct`` (e.g. ``jax.eval_shape`` of one chunk): a compiled chunk
            can return a leaf more strongly typed than its first input (a weakly typed start
            value comes out strongly typed), and a resumed chunk should see the types an
            uninterrupted one does. Default: those of ``live``.

        Returns
        -------
        Saved or None
            ``None`` when the folder holds no state (a fresh run).

        Raises
        ------
        ValueError
            The state file cannot be read, was written by a run with another fingerprint (the
            message names the setting), or its leaves differ from ``live``'s.
        """
        named, treedef = _named_leaves(live)
        if like is not None and jax.tree.structure(like) != treedef:
            raise ValueError(f"like is not shaped like live: {jax.tree.structure(like)}")
        specs = jax.tree.leaves(jax.eval_shape(lambda t: t, live if like is None else like))
        self._treedef = treedef
        self._records = records
        if records is not None:
            self.fingerprint["records"] = np.asarray(_describe(records))
        if not self.state_path.exists():
            return None
        path = self.state_path
        arrays = _read(path)
        where = f"checkpoint file {str(path)!r}"
        fmt = arrays.get("meta/format")
        if fmt is None or fmt.ndim or str(fmt) != FORMAT:
            raise ValueError(f"{where} is not a {FORMAT} state (format {_show(fmt)})")
        for name, value in self.fingerprint.items():
            old = arrays.get(f"run/{name}")
            if old is None or not _same(old, value):
                raise ValueError(
                    f"{where} was written by another run: {name} differs (checkpoint: "
                    f"{_show(old)}, this run: {_show(value)}); use another checkpoint folder, "
                    "or the run's settings"
                )
        expected = {
            f"tree/{name}": _stored(spec) for (name, _), spec in zip(named, specs, strict=True)
        }
        _check_leaves(path, arrays, expected, others=("run/", "meta/"))
        try:
            phase = str(arrays["meta/phase"])
            chunk = int(arrays["meta/chunk"])
            wall_time = float(arrays["meta/wall_time"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where} lacks its phase, chunk or wall time ({err})") from None
        if phase not in phases or not 0 <= chunk < phases[phase]:
            raise ValueError(
                f"{where} says chunk {chunk} of phase {phase!r} is done; this run has "
                f"{dict(phases)} chunks"
            )
        leaves = [
            _restore(arrays[f"tree/{name}"], spec, leaf)
            for (name, leaf), spec in zip(named, specs, strict=True)
        ]
        return Saved(phase, chunk, jax.tree.unflatten(treedef, leaves), wall_time)

    def save(self, phase: str, chunk: int, tree: Any, wall_time: float) -> None:
        """Write the state after chunk ``chunk`` of ``phase`` (atomically).

        ``tree`` has the structure of the ``live`` tree given to :meth:`resume` (whose leaves
        name the arrays in the file); ``wall_time`` is the seconds spent so far.
        """
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        named, treedef = _named_leaves(tree)
        if self._treedef is not None and treedef != self._treedef:
            raise ValueError(f"the tree to save is not shaped like the live one: {treedef}")
        arrays = {f"tree/{name}": _to_host(leaf) for name, leaf in named}
        arrays["meta/format"] = np.asarray(FORMAT)
        arrays["meta/phase"] = np.asarray(phase)
        arrays["meta/chunk"] = np.asarray(int(chunk), np.int64)
        arrays["meta/wall_time"] = np.asarray(float(wall_time))
        arrays.update({f"run/{k}": v for k, v in self.fingerprint.items()})
        _write(self.state_path, arrays)

    def save_draws(self, index: int, records: Any) -> None:
        """Write sampling chunk ``index``'s records (host arrays, draws on the leading axis)
        to ``draws-<index>.npz`` (atomically); call it BEFORE the :meth:`save` of that chunk."""
        named, _ = _named_leaves(records)
        _write(self.draws_path(index), {name: _to_host(leaf) for name, leaf in named})

    def read_draws(self, sizes: Sequence[int]) -> Any:
        """The records of every sampling chunk, read back one file at a time into arrays
        shaped ``(chain, draw, ...)`` (a tree like the ``records`` given to :meth:`resume`).

        ``sizes`` are the draws of each chunk; every file's leaves are checked against
        ``records`` (names, dtypes, shapes).
        """
        if self._records is None:
            raise ValueError("read_draws needs the records given to resume()")
        named, treedef = _named_leaves(self._records)
        total = int(sum(sizes))
        out = [np.empty((s.shape[0], total, *s.shape[1:]), s.dtype) for _, s in named]
        start = 0
        for index, n in enumerate(sizes):
            path = self.draws_path(index)
            arrays = _read(path)
            expected = {name: ((n, *s.shape), np.dtype(s.dtype)) for name, s in named}
            _check_leaves(path, arrays, expected)
            for (name, _), dest in zip(named, out, strict=True):
                dest[:, start : start + n] = np.swapaxes(arrays[name], 0, 1)
            start += n
        return jax.tree.unflatten(treedef, out)


def _restore(value: np.ndarray, spec: Any, live: Any) -> jax.Array:
    """A saved leaf as a JAX array like the live one: a PRNG key of the live key's
    implementation, weakly typed where the live (jit-carried) leaf is, so the compiled chunk
    sees the same argument types as in an uninterrupted run."""
    if _is_key(spec):
        return jax.random.wrap_key_data(value, impl=jax.random.key_impl(live))
    if spec.weak_type and value.ndim == 0:
        weak = jnp.asarray(value.item())
        if weak.dtype == spec.dtype:
            return weak
    return jnp.asarray(value)
