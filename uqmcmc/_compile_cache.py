"""Compile once: JAX's persistent compilation cache for the workflows and the tests, and a
clock of the time spent compiling (:class:`CompileClock`).

:func:`enable` points ``jax_compilation_cache_dir`` at a per-user folder and lowers JAX's
thresholds so that the programs of a chain run (each compiled in 0.2 to 4 s) are written
there; a rerun with the same shapes, in a fresh process, loads them instead of compiling.

The folder is, in order: the ``path`` argument, the environment variable ``UQMCMC_CACHE_DIR``,
``$XDG_CACHE_HOME/uqmcmc/jax`` or ``~/.cache/uqmcmc/jax``. ``UQMCMC_CACHE_DIR=""`` (or ``off``)
turns the cache off. A cache folder set for JAX itself (``JAX_COMPILATION_CACHE_DIR``) is
kept. Entries are keyed by the program, the JAX/XLA versions, the device kind and the XLA
flags, so a stale entry is never used; a folder that cannot be written only costs a warning.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from pathlib import Path

import jax

__all__ = [
    "ENV", "OFF", "MIN_COMPILE_TIME_S", "default_dir", "enable", "active_dir", "CompileClock",
]  # fmt: skip

#: Environment variable naming the cache folder (empty or ``off``: no cache).
ENV = "UQMCMC_CACHE_DIR"
#: Values of :data:`ENV` (or ``path``) that turn the cache off.
OFF = frozenset({"", "off", "0", "false", "no", "none"})
#: Programs compiling faster than this are not written (tiny eager operations).
MIN_COMPILE_TIME_S = 0.1

_state: dict[str, Path | None] = {}


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/uqmcmc/jax``, else ``~/.cache/uqmcmc/jax``.

    Examples
    --------
    >>> default_dir().parts[-2:]
    ('uqmcmc', 'jax')
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "uqmcmc" / "jax"


def active_dir() -> Path | None:
    """The folder the cache writes to, or ``None`` when it is off.

    Examples
    --------
    >>> active_dir() is None or active_dir().is_dir()
    True
    """
    current = jax.config.jax_compilation_cache_dir
    return Path(current) if current else None


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on the persistent compilation cache; returns its folder (``None``: off).

    Idempotent: once a folder is active (set here or by JAX's own configuration), later calls
    return it unchanged. Never raises: a folder that cannot be created or written gives one
    warning and the run goes on without a cache.

    Parameters
    ----------
    path
        The folder; default: the environment variable ``UQMCMC_CACHE_DIR``, else
        :func:`default_dir`. ``""`` or ``"off"`` (argument or variable): no cache.

    Examples
    --------
    >>> enable("off") is None or enable("off") == active_dir()  # off unless already on
    True
    """
    if "done" in _state:
        return _state["done"]
    chosen = os.fspath(path) if path is not None else os.environ.get(ENV)
    if chosen is not None and chosen.strip().lower() in OFF:
        return active_dir()  # nothing turned on here; JAX's own setting (if any) stays
    folder = active_dir()
    if folder is None:
        folder = Path(chosen).expanduser() if chosen else default_dir()
        if not _writable(folder):
            warnings.warn(
                f"uqmcmc: the compilation cache folder {str(folder)!r} cannot be written; "
                f"running without a persistent cache (set {ENV} to another folder, or to "
                f"'off')",
                RuntimeWarning,
                stacklevel=2,
            )
            _state["done"] = None
            return None
        jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _state["done"] = folder
    return folder


#: JAX's monitoring events of one compilation: tracing to a jaxpr, lowering to MLIR, XLA's
#: compile (absent when the program comes from the persistent cache).
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class CompileClock:
    """Seconds JAX spends tracing, lowering and compiling while the clock is active, in every
    thread, from JAX's own monitoring events (``jax.monitoring``); ``compiles`` counts XLA
    compilations (a program loaded from the persistent cache is not one).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> with CompileClock() as clock:
    ...     _ = jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.arange(5.0))
    >>> clock.seconds > 0.0
    True
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.compiles = 0
        self._lock = threading.Lock()

    def _listen(self, event: str, duration: float, **_: object) -> None:
        if event in COMPILE_EVENTS:
            with self._lock:
                self.seconds += float(duration)
                self.compiles += event == COMPILE_EVENTS[-1]

    def __enter__(self) -> CompileClock:
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)
