"""How a run writes its output folder: :class:`StagedFolder` assembles it in a temporary sibling,
renames it into place at the end, and records a ``manifest.json`` (settings, seed, versions,
timings, each stage's status, each file's sha256); a used folder is refused unless told to
overwrite, and never one that holds another command's report or files uqmcmc does not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "StagedFolder"]


_OUTPUT_SUFFIXES = (".nc", ".csv", ".png", ".html", ".md", ".json")
_OUTPUT_FOLDERS = ("backends",)
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class StagedFolder:
    """Write a run's output folder safely: refuse a used one, assemble beside it, rename.

    Creating the object checks ``out`` before any work: a folder that does not exist or is
    empty is used; a non-empty one only with ``overwrite=True``, and never one holding files
    a uqmcmc run does not write, nor the report of another command (its ``manifest.json``
    says which). ``with folder as tmp:`` yields a fresh temporary sibling ``.<name>.partial-
    <pid>``; on success ``manifest.json`` (``command``, ``settings``, ``seed``, ``versions``,
    ``timings``, each stage's ``status``, each file's ``sha256``) is written there and the
    folder renamed into place (the old one, if any, removed only then). On an error or Ctrl-C
    the old folder is untouched; whatever was written is kept in ``<out>.incomplete`` (with a
    manifest saying which stage stopped) and :attr:`kept` says so in one sentence, also set on
    the exception as ``uqmcmc_kept``.

    Parameters
    ----------
    out
        The output folder.
    command
        The command writing it (``"exact"``, ``"compare"``), recorded in the manifest.
    settings
        The settings, recorded in the manifest (JSON; other values as strings).
    seed
        The seed, recorded in the manifest.
    overwrite
        Replace a non-empty folder of the same command.
    resume
        An unfinished folder of the same run (``<out>.incomplete``, or the partial folder a
        killed run left; see :func:`uqmcmc.workflows.resume.find_unfinished`) to
        continue in: its files are kept and its finished stages' timings carried over.

    Attributes
    ----------
    timings
        Seconds per finished stage (filled by the run); each is ``"done"`` in the manifest.
    current
        The stage running now: ``"interrupted"`` or ``"failed"`` in the manifest if the run
        stops there.
    progress
        A step meter with ``done`` and ``total`` (e.g.
        :class:`~uqmcmc.workflows.compare_progress.ChainMeter`), recorded in the manifest as
        ``chain_steps``; ``None``: not recorded.
    resumable
        The run can be continued from its kept folder (``uqmcmc <command> --resume``): the
        message after an error or Ctrl-C then ends with the command that resumes it.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with StagedFolder(out, command="demo", settings={"n": 3}, seed=0) as tmp:
    ...     _ = (tmp / "table.csv").write_text("a\\n1\\n")
    >>> sorted(p.name for p in out.iterdir())
    ['manifest.json', 'table.csv']
    >>> StagedFolder(out, command="demo", settings={}, seed=0)
    Traceback (most recent call last):
    ...
    ValueError: out '...run' is not empty (manifest.json, table.csv): pass --overwrite ...
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        command: str,
        settings: Mapping[str, Any],
        seed: int,
        overwrite: bool = False,
        resume: str | os.PathLike | None = None,
    ):
        self.path = Path(out)
        self.command, self.settings, self.seed = command, dict(settings), seed
        self.overwrite = bool(overwrite)
        self.timings: dict[str, float] = {}
        self.progress: Any = None
        self.current: str | None = None
        self.kept: str | None = None
        self.tmp: Path | None = None
        self.resumable = False
        self.resume = None if resume is None else Path(resume)
        self.check()

    def check(self) -> None:
        """Refuse ``out`` if it may not be (re)written; see the class docstring."""
        from uqmcmc._validation import writable_folder

        writable_folder("out", self.path)
        if not self.path.exists():
            return
        entries = sorted(p.name for p in self.path.iterdir())
        if not entries:
            return
        manifest = self.path / MANIFEST
        if manifest.is_file():
            try:
                other = json.loads(manifest.read_text()).get("command")
            except (ValueError, AttributeError, OSError):
                other = None
            if other != self.command:
                raise ValueError(
                    f"out {str(self.path)!r} holds the report of 'uqmcmc {other}' "
                    f"({MANIFEST}); 'uqmcmc {self.command}' will not replace it: choose "
                    "another --out"
                )
        foreign = [
            name
            for name in entries
            if not (
                name.endswith(_OUTPUT_SUFFIXES)
                or (name in _OUTPUT_FOLDERS and (self.path / name).is_dir())
            )
        ]
        if foreign:
            raise ValueError(
                f"out {str(self.path)!r} holds files a uqmcmc run does not write "
                f"({', '.join(foreign[:3])}): choose another --out"
            )
        if not self.overwrite:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ValueError(
                f"out {str(self.path)!r} is not empty ({shown}): pass --overwrite "
                "(overwrite=True) to replace it, or choose another --out"
            )

    def __enter__(self) -> Path:
        self.started = time.time()
        parent = self.path.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        self.tmp = parent / f".{self.path.name}.partial-{os.getpid()}"
        if self.tmp.exists() and self.tmp != self.resume:
            shutil.rmtree(self.tmp)
        if self.resume is not None:
            try:
                old = json.loads((self.resume / MANIFEST).read_text())
                self.timings.update(old.get("timings") or {})
            except (ValueError, OSError, AttributeError):
                pass
            if self.resume.absolute() != self.tmp:
                self.resume.rename(self.tmp)
        else:
            self.tmp.mkdir()
        self.save_progress()
        return self.tmp

    def save_progress(self) -> None:
        """Write the manifest of the run so far (status ``running``, no file hashes) into the
        folder being assembled, so that a killed run can be found and resumed."""
        if self.tmp is None:
            return
        text = json.dumps(self.manifest("running", hashes=False), indent=2)
        tmp = self.tmp / (MANIFEST + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.tmp / MANIFEST)

    def manifest(self, status: str | None = None, *, hashes: bool = True) -> dict:
        """The manifest of the folder being assembled (``status`` of :attr:`current`;
        ``hashes``: each file's sha256, else the files are not listed)."""
        from uqmcmc._meta import versions

        stages = {name: {"status": "done", "seconds": t} for name, t in self.timings.items()}
        if status is not None and self.current is not None:
            stages[self.current.replace(" ", "_")] = {"status": status, "seconds": None}
        files = {
            str(p.relative_to(self.tmp)): _sha256(p)
            for p in (sorted(self.tmp.rglob("*")) if hashes else ())
            if p.is_file() and p.name != MANIFEST
        }
        return {
            "command": self.command,
            "status": status or "complete",
            "settings": _json_safe(self.settings),
            "seed": self.seed,
            "versions": versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "wall_time_s": round(time.time() - self.started, 2),
            "overwrite": self.overwrite,
            "timings": dict(self.timings),
            "chain_steps": None
            if self.progress is None
            else {"done": self.progress.done, "planned": self.progress.total},
            "stages": stages,
            "files": files,
        }

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            text = json.dumps(self.manifest(), indent=2)
            (self.tmp / MANIFEST).write_text(text)
            old = None
            if self.path.exists():
                old = self.path.absolute().parent / f".{self.path.name}.old-{os.getpid()}"
                self.path.rename(old)
            self.tmp.rename(self.path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            return False
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        where = f" during {self.current}" if self.current else ""
        unchanged = f"{str(self.path)!r} is unchanged"
        try:
            if any(p.is_file() and p.name != MANIFEST for p in self.tmp.rglob("*")):
                (self.tmp / MANIFEST).write_text(json.dumps(self.manifest(status), indent=2))
                kept = self.path.absolute().parent / f"{self.path.name}.incomplete"
                if kept.exists():
                    shutil.rmtree(kept)
                self.tmp.rename(kept)
                self.kept = (
                    f"{status}{where}; what was written is kept in {str(kept)!r}, {unchanged}"
                )
                if self.resumable:
                    again = f"uqmcmc {self.command} --resume {shlex.quote(str(kept))}"
                    self.kept += f"; resume: {again}"
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.kept = f"{status}{where}; nothing was written, {unchanged}"
        except OSError as err:  # keep the original error; say where the partial folder is
            self.kept = f"{status}{where}; partial output left in {str(self.tmp)!r} ({err})"
        try:
            exc.uqmcmc_kept = self.kept
        except AttributeError:
            pass
        return False
