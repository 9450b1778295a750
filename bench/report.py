"""Tables of benchmark results: one column spec per section, rendered as text or Markdown."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["SECTIONS", "GOALS", "table", "render", "markdown", "goals", "goals_text"]

Column = tuple[str, str, Callable[[Mapping[str, Any]], Any]]


def _num(fmt: str, key: str) -> Callable[[Mapping[str, Any]], str]:
    def get(row):
        value = row.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        return format(value, fmt)

    return get


def _pm(key: str, err: str, fmt: str = ".4f") -> Callable[[Mapping[str, Any]], str]:
    return lambda row: f"{row[key]:{fmt}} ± {row[err]:{fmt}}"


def _flagged(fn: Callable[[Mapping[str, Any]], str]) -> Callable[[Mapping[str, Any]], str]:
    """``fn``'s cell, with a dagger when the row is not ``reliable``."""
    return lambda row: fn(row) + ("" if row.get("reliable", True) else " †")


def _goal(key: str, better: str) -> Callable[[Mapping[str, Any]], str]:
    """``ratio`` with a mark when the row's goal is missed (``better``: "high" or "low")."""

    def get(row):
        value, goal = row.get(key), row.get("goal")
        if value is None:
            return "-"
        missed = goal is not None and (value < goal if better == "high" else value > goal)
        return f"{value:.2f}{' (miss)' if missed else ''}"

    return get


def _scaling_cols(rows: Sequence[Mapping[str, Any]]) -> list[Column]:
    Ls = sorted({int(L) for row in rows for L in row["step_us"]})
    cols: list[Column] = [
        ("kernel", "kernel", lambda r: r["kernel"]),
        ("chains", "chains", _num("d", "chains")),
    ]
    for L in Ls:
        cols.append((f"L{L}", f"L={L} µs/step", lambda r, L=L: _fmt_opt(r["step_us"].get(str(L)))))
    cols.append(("slope", "slope (all L)", _num(".2f", "slope")))
    cols.append(("slope_large", "slope (2 largest L)", _num(".2f", "slope_large")))
    return cols


def _fmt_opt(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _fmt_flops(row: Mapping[str, Any]) -> str:
    if row.get("flops") is None:
        return "-"
    return f"{row['flops'] / 1e6:.1f}{'' if row.get('flops_source') == 'xla' else '*'}"


_CACHE = {"cold": "cold (fresh)", "warm": "warm (rerun)"}


#: Per section: title, what the ratio means, and the columns (or a function of the rows).
SECTIONS: dict[str, dict[str, Any]] = {
    "kernel_overhead": {
        "title": "1. Kernel overhead: uqmcmc (ExactDelta) vs BlackJAX on phi^4",
        "note": "ratio = steps/s of uqmcmc / steps/s of BlackJAX (goal >= 0.95); probe = uqmcmc "
        "with ΔS formed from the two actions; copies = proposal-sampler instructions in the "
        "compiled step relative to BlackJAX.",
        "columns": [
            ("kernel", "kernel", lambda r: r["kernel"]),
            ("L", "L", _num("d", "L")),
            ("chains", "chains", _num("d", "chains")),
            ("uqmcmc_us", "uqmcmc µs/step", _num(".1f", "uqmcmc_us")),
            ("blackjax_us", "BlackJAX µs/step", _num(".1f", "blackjax_us")),
            ("ratio", "ratio", _goal("ratio", "high")),
            ("probe_ratio", "probe ratio", _num(".2f", "probe_ratio")),
            ("copies", "copies", _num(".1f", "sampler_copies")),
            (
                "compile",
                "compile s (u/bj)",
                lambda r: f"{r['compile_uqmcmc_s']:.1f}/{r['compile_blackjax_s']:.1f}",
            ),
        ],  # fmt: skip
    },
    "surrogate_overhead": {
        "title": "2. Surrogate overhead: MALA step vs the bare network evaluations it needs",
        "note": "ratio = step time / bare time, same batch, same compiled loop (goal <= 1.2).",
        "columns": [
            ("backend", "backend", lambda r: r["backend"]),
            ("mode", "mode", lambda r: r["mode"]),
            ("chains", "chains", _num("d", "chains")),
            ("calls", "network calls per chain", lambda r: r["calls"]),
            ("step_us", "step µs", _num(".0f", "step_us")),
            ("bare_us", "bare µs", _num(".0f", "bare_us")),
            ("ratio", "ratio", _goal("ratio", "low")),
            (
                "compile",
                "compile s (step/bare)",
                lambda r: f"{r['compile_step_s']:.1f}/{r['compile_bare_s']:.1f}",
            ),
        ],  # fmt: skip
    },
    "ensemble_scaling": {
        "title": "3. Ensemble scaling: N members vs one",
        "note": "ratio = time of N members / time of one, as the backend evaluates them (goal "
        "<= 1.1 N); chunk = members per fused chunk (uqmcmc.uq.members.member_chunk); fused = "
        "all N in one vmap whatever the batch, the layout chunking replaces. Training: one vmap.",
        "columns": [
            ("what", "what", lambda r: r["what"]),
            ("one", "1 member ms", lambda r: f"{1e3 * r['one_s']:.2f}"),
            ("many", "N members ms", lambda r: f"{1e3 * r['many_s']:.2f}"),
            ("n", "N", _num("d", "n_members")),
            ("chunk", "chunk", _num("d", "chunk")),
            ("ratio", "ratio", _goal("ratio", "low")),
            ("fused_ratio", "fused ratio", _num(".2f", "fused_ratio")),
            (
                "compile",
                "compile/fixed s (1/N)",
                lambda r: f"{r['compile_one_s']:.1f}/{r['compile_many_s']:.1f}",
            ),
        ],  # fmt: skip
    },
    "throughput": {
        "title": "3b. Throughput: the machine's matmul rate and the surrogate network's share",
        "note": "GFLOP/s = FLOPs of one call (XLA's count, cost_analysis of the compiled call; "
        "it counts elementwise operations too; * = analytic count, XLA gave none) / median time "
        "per call; fraction = rate / the matmul's rate, median of adjacent calls' ratios (goals: "
        "forward pass >= 0.5 on the draws-mode batch, >= 0.3 on the mean-mode batch). The "
        "network is one member of the default ensemble, randomly initialised.",
        "columns": [
            ("what", "what", lambda r: r["what"]),
            ("mflop", "MFLOP/call", lambda r: _fmt_flops(r)),
            ("time", "µs/call", _num(".1f", "time_us")),
            ("gflops", "GFLOP/s", _num(".2f", "gflops")),
            ("fraction", "fraction of matmul", _goal("fraction", "high")),
            ("compile", "compile s", _num(".1f", "compile_s")),
        ],
    },
    "ess": {
        "title": "4. Effective samples per second (bulk ESS / sampling time, compile excluded)",
        "note": "z = (<|M|> - exact checkerboard) / combined MCSE: a fast chain with |z| > 4 "
        "samples the wrong distribution. * = run cut to the time budget per chain set; "
        "† = ESS below 100, too short for a trustworthy ESS, MCSE or z.",
        "columns": [
            ("L", "L", _num("d", "L")),
            ("chain", "chain", lambda r: r["chain"]),
            ("steps", "steps", lambda r: f"{r['steps']}{'*' if r.get('budget_limited') else ''}"),
            ("acc", "acc.", _num(".2f", "acceptance")),
            ("abs_m", "<|M|>", _pm("abs_m_mean", "abs_m_mcse")),
            ("z", "z", _flagged(_num(".1f", "z_abs_m"))),
            ("ess_m", "ESS |M|", _flagged(_num(".0f", "ess_abs_m"))),
            ("ess_s", "ESS S/V", _flagged(_num(".0f", "ess_action_density"))),
            ("time", "sampling s", _num(".2f", "sample_s")),
            ("eps_m", "ESS/s |M|", _flagged(_num(".1f", "ess_per_s_abs_m"))),
            ("eps_s", "ESS/s S/V", _flagged(_num(".1f", "ess_per_s_action_density"))),
            ("compile", "compile s", _num(".1f", "compile_s")),
        ],
    },
    "end_to_end": {
        "title": "5. End-to-end: the uqmcmc command in a fresh process",
        "note": "peak RSS = the child's ru_maxrss; compile cache = cold: a fresh, empty "
        "compilation cache folder (UQMCMC_CACHE_DIR), warm: the same command rerun right after "
        "with the folder the cold run filled; entries = files in it after the run.",
        "columns": [
            ("command", "command", lambda r: f"`{r['command']}`"),
            ("wall", "wall s", _num(".1f", "wall_s")),
            ("cpu", "CPU s", _num(".1f", "cpu_s")),
            ("rss", "peak RSS MB", _num(".0f", "peak_rss_mb")),
            ("exit", "exit", _num("d", "exit_code")),
            ("cache", "compile cache", lambda r: _CACHE.get(r.get("cache"), "-")),
            ("entries", "entries", _num("d", "cache_entries")),
        ],
    },
    "size_scaling": {
        "title": "6. Time per step vs lattice size",
        "note": "slope of log(time/step) against log L, least squares over all sizes and "
        "between the two largest (2 = proportional to the volume; below 2 at small L where "
        "fixed per-step costs dominate).",
        "columns": _scaling_cols,
    },
    "delayed_acceptance": {
        "title": "7. Delayed acceptance: exact calls per effective sample vs exact MALA (phi^4)",
        "note": "calls = exact action + gradient evaluations (exact MALA: 2 per step; delayed "
        "acceptance: 1 per step whose k-step surrogate sub-chain moved, never a gradient); "
        "ratio = calls per ESS / exact MALA's (< 1: fewer exact calls per effective sample); "
        "z |M| = (<|M|> - exact checkerboard) / combined MCSE; z sd = (<sd> - 1) / MCSE, sd = "
        "the Schwinger-Dyson term (exactly 1); steps = steps per chain (k-step rows of the "
        "energy ensemble run steps // k: equal surrogate work); "
        "† = ESS below 100 (orders of magnitude only).",
        "columns": [
            ("chain", "chain", lambda r: r["chain"]),
            ("steps", "steps", _num("d", "steps")),
            ("calls", "calls/step", _num(".2f", "exact_calls_per_step")),
            ("sub", "sub acc.", _num(".2f", "subchain_acceptance")),
            ("corr", "corr. acc.", _num(".2f", "correction_acceptance")),
            ("ess_m", "ESS |M|", _flagged(_num(".0f", "ess_abs_m"))),
            ("ess_sd", "ESS sd", _flagged(_num(".0f", "ess_sd"))),
            ("cpe_m", "calls/ESS |M|", _flagged(_num(".1f", "calls_per_ess_abs_m"))),
            ("cpe_sd", "calls/ESS sd", _flagged(_num(".1f", "calls_per_ess_sd"))),
            ("ratio_m", "ratio |M|", _flagged(_num(".2f", "ratio_abs_m"))),
            ("ratio_sd", "ratio sd", _flagged(_num(".2f", "ratio_sd"))),
            ("z", "z |M|", _flagged(_num(".1f", "z_abs_m"))),
            ("z_sd", "z sd", _flagged(_num(".1f", "z_sd"))),
            ("time", "sampling s", _num(".2f", "sample_s")),
        ],
    },
    "chain_parallel": {
        "title": "8. Chain-parallel sharding: forced host devices vs one device",
        "note": "ratio = chain-steps/s sharded over the devices / on one device, the paired "
        "median of side-by-side repeats (goal >= 1.5 on 2 devices over 2 real cores); "
        "identical = every recorded draw equal to the last bit.",
        "columns": [
            ("sampler", "sampler", lambda r: r["sampler"]),
            ("L", "L", _num("d", "L")),
            ("chains", "chains", _num("d", "chains")),
            ("devices", "devices", _num("d", "devices")),
            ("one", "1 device steps/s", _num(".0f", "one_chain_steps_per_s")),
            ("sharded", "sharded steps/s", _num(".0f", "sharded_chain_steps_per_s")),
            ("ratio", "ratio", _num(".2f", "ratio")),
            ("identical", "identical", lambda r: "yes" if r["bit_identical"] else "no"),
        ],
    },
}


def table(rows: Sequence[Mapping[str, Any]], columns) -> tuple[list[str], list[list[str]]]:
    """Header and cell strings of ``rows`` under ``columns`` (a list, or a function of rows).

    Examples
    --------
    >>> table([{"a": 1.5}], [("a", "A", _num(".1f", "a"))])
    (['A'], [['1.5']])
    """
    cols = columns(rows) if callable(columns) else columns
    return [c[1] for c in cols], [[str(c[2](row)) for c in cols] for row in rows]


def render(header: list[str], cells: list[list[str]], style: str = "text") -> str:
    """A fixed-width text table or a Markdown (pipe) table.

    Examples
    --------
    >>> print(render(["x", "|y|"], [["1", "22"]], "markdown"))
    | x | \\|y\\| |
    | --- | --- |
    | 1 | 22 |
    """
    if style == "markdown":

        def line(cells):
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        lines = [line(header), line(["---"] * len(header)), *(line(row) for row in cells)]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*row) for row in cells]
    return "\n".join(lines)


def section_text(name: str, section: Mapping[str, Any], style: str = "text") -> str:
    """Title, note, table (or the error) of one section of a results dict."""
    spec = SECTIONS[name]
    head = f"### {spec['title']}" if style == "markdown" else spec["title"]
    parts = [head, ""]
    if section.get("error"):
        parts.append(f"failed: {section['error']}")
    else:
        header, cells = table(section["rows"], spec["columns"])
        parts += [render(header, cells, style), "", spec["note"]]
    parts.append(f"({section.get('seconds', 0.0):.0f} s for this section)")
    return "\n".join(parts)


def markdown(results: Mapping[str, Any]) -> str:
    """The whole results dict as Markdown: date, machine, then one table per section."""
    meta = results["meta"]
    m = meta["machine"]
    versions = m["versions"]
    lines = [
        f"## Benchmarks ({meta['mode']} run, {meta['date']})",
        "",
        f"Machine: {m['cpu']}, {m['cores_available']} cores available "
        f"(load average at start {_load(m['load_average'])}), {m['platform']}, "
        f"Python {m['python']}; jax {versions['jax']}, jaxlib {versions['jaxlib']}, "
        f"blackjax {versions['blackjax']}, flax {versions['flax']}, numpyro "
        f"{versions['numpyro']}. Total {meta['total_s']:.0f} s. Times are medians of "
        f"interleaved repeats; ratios are medians of ratios of adjacent calls; compilation is "
        f"timed apart. Produced by `python -m bench` ({meta['results_file']}).",
    ]
    lines += ["", goals_text(results.get("goals") or goals(results), "markdown")]
    for name, section in results["sections"].items():
        lines += ["", section_text(name, section, "markdown")]
    return "\n".join(lines) + "\n"


def _load(load) -> str:
    return "n/a" if not load else "/".join(f"{x:.1f}" for x in load)


# -- goals --------------------------------------------------------------------------------------

MET, MISSED, NOT_MEASURED = "met", "missed", "not measured"
Measured = tuple[str, float | None, str]  # measured text, value, status


def _rows(results: Mapping[str, Any], name: str) -> tuple[list, str]:
    """The rows of section ``name`` and, when there are none, why (for the measured cell)."""
    section = (results.get("sections") or {}).get(name)
    if section is None:
        return [], "-"
    if section.get("error"):
        return [], "section failed"
    return list(section.get("rows") or []), "-"


def _finite(row: Mapping[str, Any], key: str) -> bool:
    value = row.get(key)
    return isinstance(value, int | float) and math.isfinite(value)


def _is_compare(command: str, quick: bool) -> bool:
    """Whether ``command`` is ``uqmcmc compare`` (plain or ``--quick``, ``--no-progress`` aside)."""
    words = command.split()[1:]
    if not words or words[0] != "compare":
        return False
    return set(words[1:]) - {"--no-progress"} == ({"--quick"} if quick else set())


def _compare_run(quick: bool, cache: str, limit: float) -> Callable[[Mapping], Measured]:
    def get(results):
        rows, why = _rows(results, "end_to_end")
        match = [
            r
            for r in rows
            if _is_compare(str(r.get("command", "")), quick)
            and r.get("cache", "cold") == cache
            and _finite(r, "wall_s")
        ]
        if not match:
            return why, None, NOT_MEASURED
        row = match[0]
        wall = float(row["wall_s"])
        if row.get("exit_code") != 0:
            return f"exit {row.get('exit_code')} after {wall:.1f} s", wall, MISSED
        return f"{wall:.1f} s", wall, MET if wall <= limit else MISSED

    return get


def _count(rows: Sequence, one: str, many: str) -> str:
    return f"{len(rows)} {one if len(rows) == 1 else many}"


def _batch(row: Mapping[str, Any]) -> str:
    if row.get("batch") is not None:
        return str(row["batch"])
    what = str(row.get("what", ""))
    return what.split("batch ", 1)[1] if "batch " in what else what


def _ensemble(results) -> Measured:
    rows, why = _rows(results, "ensemble_scaling")
    rows = [
        r
        for r in rows
        if not str(r.get("what", "")).startswith("train")
        and _finite(r, "ratio")
        and _finite(r, "n_members")
    ]
    if not rows:
        return why, None, NOT_MEASURED
    worst = max(rows, key=lambda r: r["ratio"] / r["n_members"])
    met = all(r["ratio"] <= 1.1 * r["n_members"] for r in rows)
    text = f"max {worst['ratio']:.2f} at batch {_batch(worst)} (N = {worst['n_members']}"
    text += f", {_count(rows, 'batch', 'batches')})"
    return text, float(worst["ratio"]), MET if met else MISSED


def _forward(mode: str, target: float) -> Callable[[Mapping], Measured]:
    def get(results):
        rows, why = _rows(results, "throughput")
        rows = [
            r
            for r in rows
            if r.get("kind") == "forward" and r.get("mode") == mode and _finite(r, "fraction")
        ]
        if not rows:
            return why, None, NOT_MEASURED
        row = rows[0]
        goal = row.get("goal", target)
        text = f"{100 * row['fraction']:.0f} % ({row['gflops']:.1f} GFLOP/s, batch {row['batch']})"
        return text, float(row["fraction"]), MET if row["fraction"] >= goal else MISSED

    return get


def _surrogate(results) -> Measured:
    rows, why = _rows(results, "surrogate_overhead")
    rows = [r for r in rows if _finite(r, "ratio")]
    if not rows:
        return why, None, NOT_MEASURED
    worst = max(rows, key=lambda r: r["ratio"] / r.get("goal", 1.2))
    met = all(r["ratio"] <= r.get("goal", 1.2) for r in rows)
    text = f"max {worst['ratio']:.2f} ({worst.get('backend')} {worst.get('mode')}, "
    text += f"{worst.get('chains')} chains; {_count(rows, 'row', 'rows')})"
    return text, float(worst["ratio"]), MET if met else MISSED


def _chain_parallel(results) -> Measured:
    rows, why = _rows(results, "chain_parallel")
    rows = [r for r in rows if r.get("devices") == 2 and _finite(r, "ratio")]
    if not rows:
        return why, None, NOT_MEASURED
    worst = min(rows, key=lambda r: r["ratio"])
    met = all(r["ratio"] >= 1.5 for r in rows)
    text = f"min {worst['ratio']:.2f} ({worst.get('sampler')} L = {worst.get('L')}, "
    text += f"{worst.get('chains')} chains; {_count(rows, 'row', 'rows')})"
    return text, float(worst["ratio"]), MET if met else MISSED


def _delayed_energy(results) -> Measured:
    """Issue "Exact chains at surrogate cost": the main job's energy ensemble, delayed acceptance
    at its best ``k`` among the rows that are reliable (ESS >= 100) and sound (``|z| < 4`` on
    ``|M|`` and ``sd``), needs >= 5x fewer exact calls per effective sample of ``sd`` than
    exact MALA."""
    rows, why = _rows(results, "delayed_acceptance")
    rows = [r for r in rows if r.get("surrogate") == "ensemble energy" and _finite(r, "ratio_sd")]
    if not rows:
        return why, None, NOT_MEASURED
    sound = [
        r
        for r in rows
        if r.get("reliable")
        and _finite(r, "z_abs_m")
        and _finite(r, "z_sd")
        and max(abs(r["z_abs_m"]), abs(r["z_sd"])) < 4
    ]
    if not sound:
        return f"no reliable row with |z| < 4 ({_count(rows, 'row', 'rows')})", None, MISSED
    best = min(sound, key=lambda r: r["ratio_sd"])
    saving = 1.0 / best["ratio_sd"]
    text = f"{saving:.1f}x at k = {best.get('k')} (|M| {1.0 / best['ratio_abs_m']:.1f}x; "
    text += f"{_count(sound, 'sound row', 'sound rows')} of {len(rows)})"
    return text, saving, MET if saving >= 5.0 else MISSED


#: The goals of the issues ("Scale and speed"; (h) "Exact chains at surrogate cost"): id, what,
#: target, how to read it off the results.
GOALS: tuple[tuple[str, str, str, Callable[[Mapping], Measured]], ...] = (
    ("a", "default `uqmcmc compare` (run with --full)", "<= 360 s",
     _compare_run(quick=False, cache="cold", limit=360.0)),
    ("b", "`uqmcmc compare --quick`", "<= 60 s",
     _compare_run(quick=True, cache="cold", limit=60.0)),
    ("c", "`uqmcmc compare --quick` rerun, warm compilation cache", "<= 40 s",
     _compare_run(quick=True, cache="warm", limit=40.0)),
    ("d", "10-member ensemble vs one member, every batch", "<= 11x (1.1 N)", _ensemble),
    ("e1", "forward pass, draws-mode batch, fraction of matmul rate", ">= 50 %",
     _forward("draws", 0.5)),
    ("e2", "forward pass, mean-mode batch, fraction of matmul rate", ">= 30 %",
     _forward("mean", 0.3)),
    ("f", "surrogate MALA step vs its bare forward passes", "<= 1.2x", _surrogate),
    ("g", "chain-parallel on 2 forced host devices vs one", ">= 1.5x", _chain_parallel),
    ("h", "delayed acceptance, energy ensemble: exact calls per ESS of sd vs exact MALA",
     ">= 5x fewer", _delayed_energy),
)  # fmt: skip


def goals(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each goal of :data:`GOALS` with its measured value and ``met``, ``missed`` or ``not
    measured`` (its section is not in ``results``, failed, or has no row for it).

    Examples
    --------
    >>> rows = goals({"sections": {"surrogate_overhead": {"rows": [
    ...     {"backend": "ensemble", "mode": "mean", "chains": 16, "ratio": 1.1, "goal": 1.2}]}}})
    >>> [(g["goal"], g["status"]) for g in rows][-3:]
    [('f', 'met'), ('g', 'not measured'), ('h', 'not measured')]
    """
    out = []
    for key, what, target, get in GOALS:
        try:
            measured, value, status = get(results)
        except Exception as err:  # a malformed row: report it, never crash the report
            measured, value, status = f"unreadable ({type(err).__name__})", None, NOT_MEASURED
        out.append(
            {
                "goal": key,
                "what": what,
                "target": target,
                "measured": measured,
                "value": value,
                "status": status,
            }
        )
    return out


def goals_text(rows: Sequence[Mapping[str, Any]], style: str = "text") -> str:
    """The goals table (rows of :func:`goals`) with its title and a note."""
    head = "### Goals" if style == "markdown" else "Goals"
    header = ["goal", "target", "measured", "status"]
    cells = [[f"({g['goal']}) {g['what']}", g["target"], g["measured"], g["status"]] for g in rows]
    counts = {s: sum(g["status"] == s for g in rows) for s in (MET, MISSED, NOT_MEASURED)}
    note = (
        f"{counts[MET]} met, {counts[MISSED]} missed, {counts[NOT_MEASURED]} not measured in this "
        "run (not measured: the section was not run, e.g. the default compare runs only with "
        "--full, or it failed, or it has no row for the goal). (e1, e2): section 3b; (d): the "
        "prediction rows of section 3 (key ratio); (f): every row of section 2; (g): section 8; "
        "(h): section 7's energy-ensemble rows, the best k with ESS >= 100 and |z| < 4."
    )
    return "\n".join([head, "", render(header, cells, style), "", note])
