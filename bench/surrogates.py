"""Surrogate backends for the benchmark, their overhead in a kernel step, ensemble scaling.

Section 2 (surrogate overhead): the time of one MALA step driven by
``GradientDelta(backend, mode)`` against the time of the bare network evaluations that step
makes. Which evaluations a step makes is not hard-coded: the backend is wrapped in a
:class:`Recorder` while the step is traced, and the bare program replays exactly the recorded
calls (same methods, same batch shapes, same number of draws), vmapped over the same chains in
the same kind of compiled loop, with nothing else around them.

Section 3 (ensemble scaling): a 10-member ensemble's prediction against one member's on the same
batch (the same ``member_apply`` code with a one-member stack), and ensemble training against
one member's (:func:`uqmcmc.uq.members.train_members`, timed per epoch by :class:`EpochClock`).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp

from bench.timing import algorithm_steps, compile_loop, measure, over_chains, paired_ratio
from uqmcmc.mcmc import GradientDelta, mala
from uqmcmc.targets import Phi4
from uqmcmc.uq import registry
from uqmcmc.uq.base import predict_linear
from uqmcmc.uq.data import Dataset, Split
from uqmcmc.uq.members import Stacked, member_apply, member_chunk, train_members
from uqmcmc.uq.moments import member_mean_var, mixture_mean_var
from uqmcmc.uq.training import cosine_adam
from uqmcmc.workflows import PENALTY
from uqmcmc.workflows.training_data import make_dataset

__all__ = ["fit_backends", "Recorder", "surrogate_overhead", "ensemble_scaling"]


def fit_backends(sizes: Any, key: jax.Array) -> dict[str, Any]:
    """Training data from the exact chain and every backend in ``sizes.backends``, fitted.

    Architectures and fit settings are the compare workflow's (the built-in specs of
    :mod:`uqmcmc.uq.registry`: :func:`uqmcmc.uq.registry.fit`); the training length is the
    benchmark's (``sizes.epochs``, ``svi_steps``, ``gp_steps``), since timing does not need a
    converged surrogate. The data are ``n_train + 20`` fields from the exact chain
    (:func:`uqmcmc.workflows.training_data.make_dataset`), or random fields with exact labels
    when ``sizes.exact_data`` is false. Returns ``{"data", "backends", "fit_s"}``.
    """
    target = Phi4(sizes.train_L, sizes.beta, sizes.g)
    k_data, k_fit = jax.random.split(key)
    start = time.perf_counter()
    if sizes.exact_data:
        data = make_dataset(target, k_data, sizes.n_train + 20, n_test=20)
    else:  # random fields, exact labels: enough to time things (smoke runs)
        x = 0.7 * jax.random.normal(k_data, (sizes.n_train + 20, *target.shape))
        split = [Split(a, target.grad(a), target.action(a)) for a in (x[20:], x[:20])]
        data = Dataset(train=split[0], val=None, test=split[1], info={"random": True})
    fit_s = {"dataset": time.perf_counter() - start}
    settings = registry.BackendSettings(
        n_members=sizes.n_members, epochs=sizes.epochs, svi_steps=sizes.svi_steps,
        gp_steps=sizes.gp_steps,
    )  # fmt: skip
    backends = {}
    for i, name in enumerate(sizes.backends):
        start = time.perf_counter()
        backend = registry.fit(
            name, settings, data.train.x, data.train.grad, jax.random.fold_in(k_fit, i)
        )
        jax.block_until_ready(backend.predict_mean_var(data.test.x))
        fit_s[name] = time.perf_counter() - start
        backends[name] = backend
    return {"data": data, "backends": backends, "fit_s": fit_s}


class Recorder:
    """A UQ backend that records ``(method, input shape, n)`` of every call, then delegates.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Zero:
    ...     def predict_mean_var(self, x):
    ...         return x * 0, x * 0
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.zeros((n, *x.shape))
    >>> rec = Recorder(Zero())
    >>> _ = rec.predict_mean_var(jnp.ones((2, 4, 4)))
    >>> rec.calls
    [('mean_var', (2, 4, 4), None)]
    """

    def __init__(self, backend: Any):
        self.backend = backend
        self.kind = getattr(backend, "kind", type(backend).__name__)
        self.calls: list[tuple[str, tuple, int | None]] = []

    def predict_mean_var(self, x):
        self.calls.append(("mean_var", tuple(x.shape), None))
        return self.backend.predict_mean_var(x)

    def predict_draws(self, key, x, n):
        self.calls.append(("draws", tuple(x.shape), int(n)))
        return self.backend.predict_draws(key, x, n)

    def predict_linear(self, x, weights):
        self.calls.append(("linear", tuple(x.shape), None))
        return predict_linear(self.backend, x, weights)


def network_calls(backend: Any, algorithm_of, x: jax.Array) -> list[tuple[str, tuple, int | None]]:
    """The backend calls one step of ``algorithm_of(backend)`` makes, for one chain at ``x``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import GradientDelta, mala
    >>> class Harmonic:  # grad S = x, known exactly
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.zeros_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.broadcast_to(x, (n, *x.shape))
    >>> network_calls(Harmonic(), lambda b: mala(GradientDelta(b), 0.1), jnp.zeros((4, 4)))
    [('linear', (3, 4, 4), None)]
    """
    rec = Recorder(backend)
    alg = algorithm_of(rec)
    state = alg.init(x)
    rec.calls.clear()
    jax.eval_shape(alg.step, jax.random.key(0), state)
    return list(rec.calls)


def bare_program(backend: Any, calls, mean_only: bool):
    """One chain's bare evaluation ``(key, x) -> x``: the recorded calls and nothing else.

    Each call's batch is built from ``x`` (slightly scaled copies, so no two rows are equal),
    and its outputs are folded back into ``x`` with a tiny weight so the loop cannot hoist the
    evaluation out. ``mean_only``: the predictive variance of ``mean_var`` calls is not used
    (as in ``draws`` mode, where the mean only drives the MALA drift), so XLA may drop it as
    it does in the step.
    """

    def run(key, x):
        keys = jax.random.split(key, len(calls))
        acc = jnp.zeros_like(x)
        for (kind, shape, n), k in zip(calls, keys, strict=True):
            rows = math.prod(shape) // x.size
            scale = 1.0 + 1e-3 * jnp.arange(rows, dtype=x.dtype).reshape(
                shape[: -x.ndim] + (1,) * x.ndim
            )
            batch = x * scale
            if kind == "draws":
                out = backend.predict_draws(k, batch, n)
            elif kind == "linear":
                mean, var = predict_linear(backend, batch, jnp.ones_like(batch))
                out = mean + var
            else:
                mean, var = backend.predict_mean_var(batch)
                out = mean if mean_only else mean + var
            acc = acc + jnp.mean(out.reshape(-1, *x.shape), axis=0)
        return x - 1e-4 * acc

    return run


def surrogate_overhead(backends: dict[str, Any], sizes: Any, key: jax.Array) -> list[dict]:
    """Section 2: MALA step with each backend and mode vs its bare network evaluations."""
    rows = []
    target = Phi4(sizes.train_L, sizes.beta, sizes.g)
    for chains in sizes.surrogate_chains:
        x0 = 0.5 * jax.random.normal(jax.random.fold_in(key, chains), (chains, *target.shape))
        for name, backend in backends.items():
            for mode in sizes.surrogate_modes:
                n_draws = sizes.n_draws if mode == "draws" else None

                def algorithm_of(b, mode=mode, n_draws=n_draws):
                    est = GradientDelta(b, rule="simpson", mode=mode, n_draws=n_draws)
                    return mala(est, sizes.mala_step(target.L), acceptance=PENALTY[mode])

                alg = algorithm_of(backend)
                calls = network_calls(backend, algorithm_of, x0[0])
                bare = bare_program(backend, calls, mean_only=mode == "draws")
                loops = [
                    compile_loop("step", algorithm_steps(alg, chains), jax.vmap(alg.init)(x0)),
                    compile_loop("bare", over_chains(bare, chains), x0),
                ]
                res = measure(loops, repeats=sizes.repeats, min_time=sizes.min_time)
                rows.append(
                    {
                        "backend": name,
                        "mode": mode,
                        "L": target.L,
                        "chains": chains,
                        "calls": " + ".join(_describe(c) for c in calls),
                        "step_us": 1e6 * res["step"]["step_s"],
                        "bare_us": 1e6 * res["bare"]["step_s"],
                        "ratio": paired_ratio(res, "step", "bare"),
                        "compile_step_s": res["step"]["compile_s"],
                        "compile_bare_s": res["bare"]["compile_s"],
                        "goal": 1.2,
                    }
                )
    return rows


def _describe(call) -> str:
    kind, shape, n = call
    batch = "x".join(str(s) for s in shape[:-2]) or "1"
    return f"{kind}[{batch}]" if n is None else f"{kind}[{batch}, n={n}]"


def ensemble_scaling(ensemble: Any, data: Any, sizes: Any, key: jax.Array) -> list[dict]:
    """Section 3: ``N`` members vs one, prediction on one batch and training per epoch.

    Three candidates per batch, timed side by side: one member, the ``N`` members as the
    backend evaluates them (fused ``vmap`` or sequential chunks, :func:`member_chunk`), and all
    ``N`` fused in one ``vmap`` whatever the size (``fused_ratio``), the layout chunking replaces.
    """
    rows = []
    members = ensemble.members
    n = members.n_members
    one = Stacked(members.graphdef, jax.tree.map(lambda a: a[:1], members.state))
    L = data.train.x.shape[-1]
    for batch in sizes.ensemble_batches:
        x = 0.5 * jax.random.normal(jax.random.fold_in(key, batch), (batch, L, L))
        candidates = (("chunked", members, None), ("fused", members, n), ("one", one, None))
        loops = []
        for label, stack, chunk in candidates:

            def predict(k, x, stack=stack, chunk=chunk):
                outputs = member_apply(stack, member_mean_var, x, chunk=chunk)
                mean, var = mixture_mean_var(*outputs)
                return x - 1e-4 * (mean + var)

            loops.append(compile_loop(label, predict, x))
        res = measure(loops, repeats=sizes.repeats, min_time=sizes.min_time)
        rows.append(
            {
                "what": f"predict_mean_var, batch {batch}x{L}x{L}",
                "one_s": res["one"]["step_s"],
                "many_s": res["chunked"]["step_s"],
                "fused_s": res["fused"]["step_s"],
                "n_members": n,
                "chunk": member_chunk(n, batch * L * L),
                "ratio": paired_ratio(res, "chunked", "one"),
                "fused_ratio": paired_ratio(res, "fused", "one"),
                "goal": float(n + 1),
                "compile_one_s": res["one"]["compile_s"],
                "compile_many_s": res["chunked"]["compile_s"],
            }
        )
    rows.append(_training_scaling(ensemble, data, n, sizes, key))
    return rows


class EpochClock:
    """A stand-in for ``tqdm`` that records when each epoch of a training loop starts and ends.

    :func:`uqmcmc.uq.members.train_members` runs its epochs in a Python loop over
    ``tqdm(range(epochs))`` and waits for each epoch's loss, so the time between two items is
    one epoch; the first includes compiling the epoch function.

    Examples
    --------
    >>> clock = EpochClock()
    >>> [i for i in clock(range(3))]
    [0, 1, 2]
    >>> len(clock.durations())
    3
    """

    def __init__(self):
        self.stamps: list[float] = []

    def __call__(self, iterable, **kwargs):
        self.iterable = iterable
        return self

    def __iter__(self):
        self.stamps = [time.perf_counter()]
        for item in self.iterable:
            yield item
            self.stamps.append(time.perf_counter())

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def durations(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps[:-1], self.stamps[1:], strict=True)]


@contextlib.contextmanager
def _clocked_training():
    """Replace the training loop's ``tqdm`` by an :class:`EpochClock` for the duration."""
    module = importlib.import_module("uqmcmc.uq._loop")
    clock, saved = EpochClock(), module.tqdm
    module.tqdm = clock
    try:
        yield clock
    finally:
        module.tqdm = saved


def _training_scaling(ensemble: Any, data: Any, n: int, sizes: Any, key: jax.Array) -> dict:
    """Per-epoch training time of ``n`` members vs one (median over epochs after the first;
    the first epoch's excess is the compilation)."""
    per_epoch, first = {}, {}
    for members in (1, n):
        with _clocked_training() as clock:
            train_members(
                ensemble.spec.build, data.train.x, data.train.grad, key=key,
                n_members=members, epochs=sizes.train_epochs, optimizer=cosine_adam(3e-2),
                progress=False,
            )  # fmt: skip
        times = clock.durations()
        per_epoch[members] = statistics.median(times[1:])
        first[members] = times[0] - per_epoch[members]
    return {
        "what": f"training, per epoch ({data.train.x.shape[0]} configs)",
        "one_s": per_epoch[1],
        "many_s": per_epoch[n],
        "n_members": n,
        "ratio": per_epoch[n] / per_epoch[1],
        "compile_one_s": first[1],
        "compile_many_s": first[n],
    }
