"""uqmcmc benchmarks: kernel throughput against BlackJAX, surrogate overhead, ensemble scaling,
effective samples per second, end-to-end cost and scaling with lattice size.

Run from the repository root (``bench`` is not part of the installed package)::

    python -m bench            # the full benchmark, ~10 minutes on 2 cores
    python -m bench --full     # also times the default `uqmcmc compare` run
    python -m bench --smoke    # tiny sizes for CI: checks the runner, numbers mean nothing

Results: ``bench/results/<date>-<host>.json`` and ``bench/results/latest.md``.
"""
