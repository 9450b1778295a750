"""What the compare display shows while chains run: chain steps done out of all the job plans,
and the time left at the rate measured so far."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from uqmcmc.workflows.compare_config import CompareConfig
from uqmcmc.workflows.resume import RunCancelled

__all__ = ["ChainMeter", "chain_set_steps", "planned_chain_steps"]


def planned_chain_steps(cfg: CompareConfig) -> int:
    """Kernel steps (warm-up included, per chain set whatever its number of chains and
    variants) of every MALA run of a compare job: the exact control and its coupled twin, the
    positive control, both estimator modes, the per-draw chains and the delayed-acceptance
    control of every backend, and the noise sweep; the total a :class:`ChainMeter` counts towards.

    Examples
    --------
    >>> cfg = CompareConfig(steps=100, warmup=20, thin=2, member_steps=50, delayed_steps=40,
    ...                     backends=("ensemble",))
    >>> planned_chain_steps(cfg)  # 3 controls, 2 modes, the sweep: 120 steps; 70 per draw; 60
    850
    """
    backends = tuple(cfg.backends)
    run, member, delayed = chain_set_steps(cfg)
    sweep = cfg.swept_backend is not None
    return (3 + 2 * len(backends) + sweep) * run + len(backends) * (member + delayed)


def chain_set_steps(cfg: CompareConfig) -> tuple[int, int, int]:
    """Kernel steps of one chain set (warm-up included): ``(a run, a per-draw run, a
    delayed-acceptance run)``.

    Examples
    --------
    >>> chain_set_steps(CompareConfig(steps=100, warmup=20, thin=3, member_steps=50,
    ...                               delayed_steps=30))
    (119, 68, 50)
    """
    return tuple(
        cfg.warmup + (n // cfg.thin) * cfg.thin
        for n in (cfg.steps, cfg.member_steps, cfg.delayed_steps)
    )


class ChainMeter:
    """Chain steps done out of all planned, counted by every run of a job (pass it as the
    driver's ``progress``; thread-safe), and the time left at the rate measured so far.

    Examples
    --------
    >>> meter = ChainMeter(1000)
    >>> meter(250)
    >>> meter.done, meter.describe(now=meter.started + 10.0)
    (250, 'chain steps 250/1,000, about 30 s left')
    """

    def __init__(self, total: int, on_change: Callable[[ChainMeter], Any] | None = None):
        self.total = int(total)
        self.done = 0
        self.started: float | None = None
        self._on_change = on_change
        self._lock = threading.Lock()
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the chains that report here: their next chunk raises
        :class:`~uqmcmc.workflows.resume.RunCancelled`."""
        self.cancelled = True

    def __call__(self, n: int) -> None:
        if self.cancelled:
            raise RunCancelled("the run was stopped")
        with self._lock:
            if self.started is None:  # the clock starts with the first chunk, after a compile
                self.started = time.perf_counter()
            self.done += int(n)
        if self._on_change is not None:
            self._on_change(self)

    def skip(self, n: int) -> None:
        """Take ``n`` planned steps off the total (a resumed run reads them from disk)."""
        with self._lock:
            self.total = max(self.total - int(n), self.done)

    def describe(self, now: float | None = None) -> str:
        """``chain steps <done>/<total>, about <t> left`` (the rate: steps done per second
        since the first chunk, every run side by side)."""
        text = f"chain steps {self.done:,}/{self.total:,}"
        now = time.perf_counter() if now is None else now
        if self.started is None or self.done == 0 or now <= self.started:
            return text
        left = max(self.total - self.done, 0) * (now - self.started) / self.done
        return f"{text}, about {_duration(left)} left"


def _duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``1 h 05 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
