"""Resuming a workflow: stage checkpoints, finding an unfinished run, and its settings.

Every finished piece of a compare run is written to ``checkpoints/`` in the folder being
assembled as soon as it is done: the exact chain, the exact control, each trained backend
(in ``backends/``, as the report keeps it) and each chain job's runs. A run continued with
``run_compare(cfg, resume=folder)`` (``uqmcmc compare --resume DIR``) reads what is there and
computes only the rest. The run that is not interrupted goes through the same files (every
piece is read back from its checkpoint), so a resumed report is the same as an uninterrupted
one, number for number. ``checkpoints/`` is removed when the report is complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from uqmcmc import _arviz
from uqmcmc._interrupts import held_interrupt
from uqmcmc.diagnostics.report_folder import MANIFEST

__all__ = ["CHECKPOINTS", "StageCheckpoints", "find_unfinished", "resumed_settings"]

#: The sub-folder of a report being assembled that holds the stage checkpoints.
CHECKPOINTS = "checkpoints"
_DONE = "done.json"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class RunCancelled(RuntimeError):
    """Raised in a job of a run that was stopped (an error elsewhere, Ctrl-C), at its next
    chunk or checkpoint: nothing more of it is computed or written, so a run resumed in the
    same process never meets a job of the stopped one.

    Examples
    --------
    >>> issubclass(RunCancelled, RuntimeError)
    True
    """


class StageCheckpoints:
    """The finished pieces of one run, in ``folder/checkpoints``: ArviZ runs (one, a list or a
    dict of them per piece), written when a piece is done and read back from disk.

    A piece is done when its ``done.json`` exists; it is written last (after every netCDF
    file of the piece, each written under a temporary name and renamed), so a run killed while
    writing leaves the piece undone, and it is computed again.

    Parameters
    ----------
    folder
        The folder being assembled (the checkpoints go in its ``checkpoints/``).
    on_skip
        Called with ``steps`` when a piece is read instead of computed (e.g. to take the
        skipped chain steps off a progress meter).

    Examples
    --------
    >>> import tempfile, jax.numpy as jnp
    >>> from uqmcmc.mcmc import checkerboard, run_chains
    >>> from uqmcmc.targets import Phi4
    >>> t = Phi4(4, 0.5, 1.0)
    >>> ckpt = StageCheckpoints(tempfile.mkdtemp())
    >>> calls = []
    >>> def run():
    ...     calls.append(1)
    ...     return [run_chains(checkerboard(t, 1.0), 0, jnp.zeros((2, 4, 4)), 20, target=t,
    ...                        progress=False)]
    >>> first = ckpt.piece("exact", run)
    >>> again = ckpt.piece("exact", run)  # read back, not run
    >>> len(calls), ckpt.done("exact")
    (1, True)
    >>> bool((first[0].posterior["sd"] == again[0].posterior["sd"]).all())
    True
    """

    def __init__(self, folder: str | os.PathLike, on_skip: Callable[[int], Any] | None = None):
        self.root = Path(folder) / CHECKPOINTS
        self.on_skip = on_skip
        self.cancelled = False

    def cancel(self) -> None:
        """Stop writing: every later :meth:`piece` raises :class:`RunCancelled` instead."""
        self.cancelled = True

    def _dir(self, name: str) -> Path:
        return self.root / _safe(name)

    def done(self, name: str) -> bool:
        """Whether piece ``name`` is complete on disk."""
        return (self._dir(name) / _DONE).is_file()

    def mark(self, name: str, **record: Any) -> None:
        """Mark piece ``name`` done (with a JSON ``record``), for pieces kept elsewhere."""
        where = self._dir(name)
        where.mkdir(parents=True, exist_ok=True)
        _write_text(where / _DONE, json.dumps(record))

    def record(self, name: str) -> dict:
        """The JSON record of a done piece."""
        return json.loads((self._dir(name) / _DONE).read_text())

    def piece(self, name: str, compute: Callable[[], Any], steps: int = 0) -> Any:
        """Piece ``name``: read from disk when done, else ``compute()`` (an ArviZ run, a list
        or a dict of runs), written, and read back. ``steps`` are the chain steps it stands for
        (passed to ``on_skip`` when it is read instead of computed)."""
        if self.done(name):
            if self.on_skip is not None and steps:
                self.on_skip(steps)
            return self._read(name)
        if self.cancelled:
            raise RunCancelled(f"the run was stopped before piece {name!r}")
        value = compute()
        if self.cancelled:
            raise RunCancelled(f"the run was stopped while piece {name!r} ran")
        self._write(name, value)
        return self._read(name)

    def _write(self, name: str, value: Any) -> None:
        where = self._dir(name)
        where.mkdir(parents=True, exist_ok=True)
        if isinstance(value, dict):
            kind, keys, items = "dict", list(value), list(value.values())
        elif isinstance(value, list | tuple):
            kind, keys, items = "list", None, list(value)
        else:
            kind, keys, items = "one", None, [value]
        with held_interrupt():  # each file whole, then Ctrl-C stops the run
            for i, idata in enumerate(items):
                tmp = where / f"{i}.nc.tmp"
                _arviz.save(idata, tmp)
                os.replace(tmp, where / f"{i}.nc")
            _write_text(where / _DONE, json.dumps({"kind": kind, "keys": keys, "n": len(items)}))

    def _read(self, name: str) -> Any:
        where = self._dir(name)
        record = self.record(name)
        items = [_arviz.load(where / f"{i}.nc", eager=True) for i in range(record["n"])]
        if record["kind"] == "dict":
            return dict(zip(record["keys"], items, strict=True))
        if record["kind"] == "list":
            return items
        return items[0]


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_unfinished(path: str | os.PathLike, command: str = "compare") -> Path:
    """The unfinished run to resume for ``path``: ``path`` itself when it is one (its
    ``manifest.json`` status is not ``complete``), else ``<path>.incomplete`` (kept after an
    error or Ctrl-C), else the newest ``.<name>.partial-<pid>`` beside it whose process is gone
    (left by a killed run).

    Raises
    ------
    ValueError
        When there is none, or it holds another command's run; the message says what was
        looked for.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> (base / "rep.incomplete").mkdir()
    >>> _ = (base / "rep.incomplete" / "manifest.json").write_text(
    ...     json.dumps({"command": "compare", "status": "interrupted"}))
    >>> find_unfinished(base / "rep").name
    'rep.incomplete'
    >>> find_unfinished(base / "other")
    Traceback (most recent call last):
    ...
    ValueError: nothing to resume at '.../other': no unfinished compare run there ...
    """
    path = Path(path)
    candidates = [path, path.with_name(path.name + ".incomplete")]
    parent = path.absolute().parent
    partial = []
    if parent.is_dir():
        for p in parent.glob(f".{path.name}.partial-*"):
            pid = p.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                partial.append(p)
    candidates += sorted(partial, key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in candidates:
        manifest = folder / MANIFEST
        if not manifest.is_file():
            continue
        try:
            data = json.loads(manifest.read_text())
        except (ValueError, OSError):
            continue
        if not isinstance(data, dict) or data.get("status") == "complete":
            continue
        if data.get("command") != command:
            raise ValueError(
                f"{str(folder)!r} holds an unfinished 'uqmcmc {data.get('command')}' run, "
                f"not 'uqmcmc {command}'"
            )
        return folder
    raise ValueError(
        f"nothing to resume at {str(path)!r}: no unfinished {command} run there "
        f"(looked for its manifest.json, {path.name}.incomplete and .{path.name}.partial-* "
        "beside it)"
    )


def resumed_settings(folder: Path, cls: type, given: Any = None) -> tuple[Any, bool]:
    """The settings (a ``cls`` dataclass) an unfinished run in ``folder`` started with, from
    its manifest, and whether it was allowed to overwrite its ``out``; ``given`` settings (a
    ``cls``, or a mapping of some of its fields), when not ``None``, must agree with them (a
    ``ValueError`` names each that differs).

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> from uqmcmc.workflows.exact import ExactConfig
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "manifest.json").write_text(json.dumps(
    ...     {"command": "exact", "settings": {"L": 4, "steps": 300}, "overwrite": False}))
    >>> cfg, overwrite = resumed_settings(run, ExactConfig)
    >>> cfg.L, cfg.steps, overwrite
    (4, 300, False)
    >>> resumed_settings(run, ExactConfig, ExactConfig(L=4, steps=200))
    Traceback (most recent call last):
    ...
    ValueError: cannot resume '...' with other settings: steps (200, the run has 300)
    >>> resumed_settings(run, ExactConfig, {"steps": 300})[0].steps  # some fields only
    300
    """
    record = json.loads((Path(folder) / MANIFEST).read_text())
    fields = {f.name for f in dataclasses.fields(cls)}
    saved = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in (record.get("settings") or {}).items()
        if k in fields
    }
    started = cls(**saved)
    if given is not None:
        wanted = dataclasses.asdict(given) if dataclasses.is_dataclass(given) else dict(given)
        differ = [
            f"{f} ({v!r}, the run has {getattr(started, f, None)!r})"
            for f, v in sorted(wanted.items())
            if f not in fields or v != getattr(started, f)
        ]
        if differ:
            raise ValueError(
                f"cannot resume {str(folder)!r} with other settings: {', '.join(differ)}"
            )
    return started, bool(record.get("overwrite", False))


def confirm_own_code(unfinished: Path, target: str, named: str | None) -> None:
    """Refuse to resume a run of a user's own target (``target`` not built in) unless the
    caller named that target again (``named``): resuming a folder must not import and run
    whatever code its manifest names. Refuse it too when the file defining the target has
    changed since the run started (its SHA-256 in the manifest,
    :func:`uqmcmc.targets.loading.source_record`): the finished pieces came from the old code.

    Examples
    --------
    >>> confirm_own_code(Path("run"), "phi4", None)  # a built-in target needs no confirmation
    >>> confirm_own_code(Path("run"), "mine:Cluster", None)
    Traceback (most recent call last):
    ...
    ValueError: 'run' samples a target of your own code ('mine:Cluster'): resume with ...
    """
    from uqmcmc.targets.loading import BUILTIN_TARGETS, source_record

    if target in BUILTIN_TARGETS:
        return
    if named != target:
        raise ValueError(
            f"{str(unfinished)!r} samples a target of your own code ({target!r}): resume with "
            f"target={target!r} (--target {target}) to confirm that this code may be imported "
            "and run"
        )
    manifest = Path(unfinished) / MANIFEST
    record = json.loads(manifest.read_text()) if manifest.is_file() else {}
    then = (record.get("settings") or {}).get("target_source")
    now = source_record(target).get("target_source")
    if then and now and then.get("sha256") != now["sha256"]:
        raise ValueError(
            f"{str(unfinished)!r} was started with another version of {now['file']} (the file "
            f"defining {target!r} has changed since): its finished pieces came from the old "
            "code. Start the run anew (--overwrite), or restore the file"
        )
