"""End-to-end cost of the ``uqmcmc`` command (section 5): wall time and peak memory.

Each command runs in a fresh Python subprocess; its peak resident memory is the child's own
``ru_maxrss`` from ``os.wait4`` (XLA allocates outside Python's heap, so ``tracemalloc`` would
miss most of it).

Every command gets a fresh, empty compilation cache folder (``UQMCMC_CACHE_DIR``, see
:mod:`uqmcmc._compile_cache`; a ``JAX_COMPILATION_CACHE_DIR`` of the caller is not passed on),
so it runs cold whatever the user's own cache holds. The commands of ``sizes.e2e_warm`` are
run a second time right after, in a fresh process with the same folder: the warm-cache rerun.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_command", "end_to_end"]


def run_command(
    args: list[str], *, timeout: float | None = None, env: dict[str, str] | None = None
) -> dict:
    """Run ``python -m uqmcmc.cli *args`` in a subprocess; wall time, peak RSS, exit code.

    ``--out`` is added (a temporary folder, removed afterwards) unless ``args`` has one.
    ``env``: the child's environment (default: this process's).

    Examples
    --------
    >>> r = run_command(["--help"])
    >>> r["exit_code"], r["peak_rss_mb"] > 10
    (0, True)
    """
    with tempfile.TemporaryDirectory(prefix="uqmcmc-bench-") as tmp:
        cmd = [sys.executable, "-m", "uqmcmc.cli", *args]
        if args and args[0] in ("exact", "compare") and "--out" not in args:
            cmd += ["--out", str(Path(tmp) / "out")]
        log = Path(tmp) / "log.txt"
        with open(log, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
            deadline = None if timeout is None else start + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.05)
            wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
    return {
        "command": "uqmcmc " + " ".join(args),
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,  # kilobytes on Linux
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "exit_code": proc.returncode,
        "log_tail": tail if proc.returncode else [],
    }


def _cache_env(folder: str) -> dict[str, str]:
    """This process's environment with the compilation cache in ``folder`` (and only there)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["UQMCMC_CACHE_DIR"] = folder
    return env


def _entries(folder: str) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def end_to_end(sizes) -> list[dict]:
    """Section 5: the commands of ``sizes.e2e_commands``, one subprocess each, each with a
    fresh compilation cache (``"cache": "cold"``); those also in ``sizes.e2e_warm`` run again
    right after with the same cache (``"cache": "warm"``). ``cache_entries``: files in the
    cache folder after the run."""
    rows = []
    warm = {tuple(c) for c in getattr(sizes, "e2e_warm", ())}
    for args in sizes.e2e_commands:
        folder = tempfile.mkdtemp(prefix="uqmcmc-bench-cache-")
        try:
            env = _cache_env(folder)
            for cache in ("cold", "warm") if tuple(args) in warm else ("cold",):
                row = run_command(list(args), timeout=sizes.e2e_timeout, env=env)
                rows.append({**row, "cache": cache, "cache_entries": _entries(folder)})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rows
