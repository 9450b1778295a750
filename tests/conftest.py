"""Shared fixtures: the independent phi^4 reference values (``tests/data/phi4_exact.json``);
and JAX's persistent compilation cache for the whole session (:func:`pytest_configure`)."""

from __future__ import annotations

import os
import sys

import pytest
from _ci_legs import ci_leg
from _pytest.doctest import DoctestItem
from _standins import reference_points

from uqmcmc import _compile_cache


def pytest_configure(config):
    """Turn on the compilation cache before anything compiles, in pytest's cache folder
    (``.pytest_cache/d/uqmcmc-jax``) unless ``UQMCMC_CACHE_DIR`` says otherwise (``off``: no
    cache). The folder is exported in ``UQMCMC_CACHE_DIR`` so that the subprocesses of the
    tests (CLI, bench, sharding) share it. On a fresh machine (CI) it starts empty: every
    program is compiled as without a cache, and written for the next run."""
    if _compile_cache.ENV not in os.environ and getattr(config, "cache", None) is not None:
        os.environ[_compile_cache.ENV] = str(config.cache.mkdir("uqmcmc-jax"))
    folder = _compile_cache.enable()
    if folder is not None:
        os.environ.setdefault(_compile_cache.ENV, str(folder))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``user_module(name, source)`` writes ``name.py`` into a fresh working directory (outside
    the package, as a user's own code) and returns ``name``; the import is undone afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    written = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def phi4_reference():
    """Map ``(L, beta, g) -> {observable: (mean, err)}`` of the reference file."""
    return {
        (p["L"], p["beta"], p["g"]): {
            k: (v["mean"], v["err"]) for k, v in p.items() if isinstance(v, dict)
        }
        for p in reference_points()
    }


#: Docstring examples that train networks or run a workflow (each >= 2 s on 2 cores): marked
#: ``slow`` like the long tests, so ``pytest -m "not slow"`` is the fast subset.
SLOW_DOCTESTS = {
    "run_compare",
    "write_compare_report",
    "rule_pair",
    "member_runs",
    "noise_sweep",
    "exact_coupled",
    "run_active_learning",
    "exact_mala",
    "per_draw_algorithm",
    "main",
    "make_dataset",
    "train_members",
    "DeepEnsemble",
    "MCDropout",
    "BayesianLastLayer",
    "NumPyroBNN",
    "DeepKernelRegression",
    "EnergyNet",
    "run_chains",
    "run_exact",
    "exact_table",
    "oracle_pair",
    "batched",
    "split_batched",
}


#: Module-scoped fixtures that run chains or train networks for tens of seconds: every test of
#: that module using one is ``slow`` (the cost would otherwise land on the first fast test).
SLOW_FIXTURES = {
    "test_examples.py": "smoke_runs",
    "test_compare_workflow.py": "quick_report",
    "test_reference_chains.py": "chains",
    "test_bench.py": "smoke",
    "test_uq_gap.py": "backends",
    "test_rcnn_phi4.py": "ensemble",
    "test_bnn.py": "linear_nuts",
    "test_exact_comparison.py": "phi4_runs",
    "test_deep_kernel.py": "fitted_1d",
    "test_dropout.py": "mc",
    "test_identities.py": "phi4_table",
    "test_sharding.py": "runs",
}


#: Test modules that compile many programs and run each briefly: their programs are compiled
#: with ``jax_disable_most_optimizations`` (XLA's -O0), which halves XLA's compile time and, with
#: chains this short, costs less than it saves (together about 7 minutes of the suite's 69 on
#: 2 cores, measured side by side). The rest, long statistical chains among them, compile
#: optimised: there -O0 made the reference-chain tests twice as slow.
UNOPTIMISED = {
    "test_contract.py", "test_delayed_acceptance.py", "test_kernels.py", "test_driver.py",
    "test_energy_force.py", "test_checkpoint.py", "test_active_learning.py",
    "test_user_backend.py", "test_system.py", "test_estimators.py", "test_training.py",
    "test_nets.py", "test_ensemble.py", "test_dropout.py",
}  # fmt: skip
ENV_UNOPTIMISED = "JAX_DISABLE_MOST_OPTIMIZATIONS"


@pytest.fixture(scope="module", autouse=True)
def _compile_unoptimised(request):
    """Compile this module's programs with XLA's -O0 if it is in :data:`UNOPTIMISED`, and so
    its subprocesses (``JAX_DISABLE_MOST_OPTIMIZATIONS``): a test comparing their numbers with
    this process's bit for bit needs both compiled alike (-O0 changes the last bits). JAX's
    in-memory caches are cleared on the way in and out, so that no program compiled at one
    level is reused at the other (the flag is not part of ``jax.jit``'s cache key; the
    persistent cache's key does hold it)."""
    import jax

    if request.path.name not in UNOPTIMISED:
        yield
        return
    before = jax.config.read("jax_disable_most_optimizations")
    env_before = os.environ.get(ENV_UNOPTIMISED)
    jax.config.update("jax_disable_most_optimizations", True)
    os.environ[ENV_UNOPTIMISED] = "1"
    jax.clear_caches()
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)
        jax.clear_caches()
        if env_before is None:
            os.environ.pop(ENV_UNOPTIMISED, None)
        else:
            os.environ[ENV_UNOPTIMISED] = env_before


#: The two docstring examples that run the same tiny compare (2-3 min each, mostly compiling):
#: one per CI leg (``tests/_ci_legs.py``); each leg still writes a report through one of them.
ONE_LEG_DOCTESTS = {"run_compare": 1, "write_compare_report": 2}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if isinstance(item, DoctestItem):
            name = item.name.rsplit(".", 1)[-1]
            if name in SLOW_DOCTESTS:
                item.add_marker(pytest.mark.slow)
            if name in ONE_LEG_DOCTESTS:
                item.add_marker(ci_leg(ONE_LEG_DOCTESTS[name], f"the {name} example"))
        elif SLOW_FIXTURES.get(item.path.name) in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
