"""Chain-parallel throughput: chains split over 2 (forced host) devices vs one device.

:func:`~uqmcmc.mcmc.run_chains` splits the chain axis over the devices (``devices=None``) or
keeps it on one (``devices=1``). On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
makes two devices of one machine's cores; the goal (issue 17) is a sharded run bit-identical to
the one-device run and at least 1.5 times its throughput on 2 real cores.

Each row times ``run_chains`` with 1 device and with ``devices`` devices side by side, in turn,
``repeats`` times. The compilation cache is on (a temporary folder), and each throughput is
``chains * (long - short) steps / (t_long - t_short)``: the difference of a long and a short
run, so tracing and loading the compiled program (the same in both) cancel out. The ratio is
the median over repeats of the ratio of adjacent measurements (a load change on the shared
machine cancels). ``bit_identical`` compares the draws and statistics of the two runs.

``python -m bench.sharding [--smoke] [--out FILE]`` runs in a subprocess with the forced
devices when this process has fewer; :func:`chain_parallel` returns the rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ShardingSizes", "FULL", "SMOKE", "chain_parallel", "main"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ShardingSizes:
    """What a chain-parallel row runs."""

    devices: int = 2
    samplers: tuple[str, ...] = ("checkerboard", "mala")
    L: tuple[int, ...] = (8, 16)
    chains: int = 16
    short: int = 500
    long: int = 3000
    repeats: int = 3
    beta: float = 0.7
    g: float = 1.0


FULL = ShardingSizes()
SMOKE = ShardingSizes(samplers=("checkerboard",), L=(4,), chains=4, short=10, long=30, repeats=1)


def _flags(devices: int) -> str:
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    return " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])


def _in_subprocess(sizes: ShardingSizes) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, "-m", "bench.sharding", "--out", str(out), "--inner"]
        cmd += ["--sizes", json.dumps(dataclasses.asdict(sizes))]
        env = {**os.environ, "XLA_FLAGS": _flags(sizes.devices), "JAX_PLATFORMS": "cpu"}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench.sharding subprocess failed:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def _measure(sizes: ShardingSizes) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from uqmcmc import _arviz, _compile_cache
    from uqmcmc.mcmc import ExactDelta, checkerboard, mala, run_chains
    from uqmcmc.targets import Phi4

    _compile_cache.enable(tempfile.mkdtemp(prefix="uqmcmc-bench-"))
    algorithms = {
        "checkerboard": lambda target: checkerboard(target, 1.0),
        "mala": lambda target: mala(ExactDelta(target), 0.05),
    }

    def run(name: str, L: int, devices: int, steps: int):
        target = Phi4(L, sizes.beta, sizes.g)
        x0 = jnp.zeros((sizes.chains, L, L))
        start = time.perf_counter()
        idata = run_chains(
            algorithms[name](target), 0, x0, steps, target=target, progress=False,
            num_chunks=1, devices=devices,
        )  # fmt: skip
        return time.perf_counter() - start, idata

    def arrays(idata) -> dict:
        return {
            f"{g}/{v}": np.asarray(_arviz.group(idata, g)[v].values)
            for g in ("posterior", "sample_stats")
            for v in _arviz.group(idata, g).data_vars
        }

    rows = []
    for name, L in ((name, L) for name in sizes.samplers for L in sizes.L):
        counts = (1, sizes.devices)
        first = {d: run(name, L, d, sizes.short)[1] for d in counts}  # compile, fill the cache
        a, b = (arrays(first[d]) for d in counts)
        identical = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        rates: dict[int, list[float]] = {d: [] for d in counts}
        ratios = []
        for i in range(sizes.repeats):
            for d in counts if i % 2 == 0 else counts[::-1]:
                t_short = run(name, L, d, sizes.short)[0]
                t_long = run(name, L, d, sizes.long)[0]
                steps = sizes.chains * (sizes.long - sizes.short)
                rates[d].append(steps / max(t_long - t_short, 1e-9))
            ratios.append(rates[sizes.devices][-1] / rates[1][-1])
        rows.append(
            {
                "sampler": name,
                "L": L,
                "chains": sizes.chains,
                "devices": sizes.devices,
                "device_count": jax.device_count(),
                "one_chain_steps_per_s": statistics.median(rates[1]),
                "sharded_chain_steps_per_s": statistics.median(rates[sizes.devices]),
                "ratio": statistics.median(ratios),
                "bit_identical": bool(identical),
            }
        )
    return rows


def chain_parallel(sizes: ShardingSizes = FULL) -> list[dict]:
    """Rows of chain steps per second on 1 device and on ``sizes.devices`` devices, their
    ratio, and whether the two runs' draws are bit-identical.

    Runs in this process when it has enough devices, else in a subprocess with
    ``--xla_force_host_platform_device_count``.

    Examples
    --------
    >>> rows = chain_parallel(SMOKE)
    >>> rows[0]["devices"], rows[0]["bit_identical"]
    (2, True)
    """
    import jax

    if jax.device_count() >= sizes.devices:
        return _measure(sizes)
    return _in_subprocess(sizes)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.sharding [--smoke] [--out FILE]``: print the rows (and write them)."""
    parser = argparse.ArgumentParser(prog="python -m bench.sharding", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (checks it runs)")
    parser.add_argument("--out", help="write the rows as JSON to this file")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    if args.sizes:
        fields = json.loads(args.sizes)
        fields["samplers"], fields["L"] = tuple(fields["samplers"]), tuple(fields["L"])
        sizes = ShardingSizes(**fields)
    rows = _measure(sizes) if args.inner else chain_parallel(sizes)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    if not args.inner:
        for row in rows:
            print(
                f"{row['sampler']:>12}  L={row['L']}  chains={row['chains']}  "
                f"1 device {row['one_chain_steps_per_s']:.0f}/s  "
                f"{row['devices']} devices {row['sharded_chain_steps_per_s']:.0f}/s  "
                f"ratio {row['ratio']:.2f}  bit-identical {row['bit_identical']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
