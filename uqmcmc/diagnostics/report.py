"""The report: one self-contained ``report.html``, a ``report.md`` with PNGs beside it, CSVs.

A report is a list of :class:`Section` (title, text, an optional table, optional figures).
:func:`report_sections` builds the standard ones from the diagnostics' outputs (settings, the
comparison with pass/fail, epistemic error bars, identity checks, each plot) and
:func:`write_report` writes them. A run's output folder is written through
:class:`~uqmcmc.diagnostics.report_folder.StagedFolder`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["Section", "failed_rows", "report_sections", "write_report"]

#: Columns of the comparison table shown in the report (the CSV keeps them all).
COMPARISON_COLUMNS = (
    "run",
    "observable",
    "mean",
    "mcse",
    "exact",
    "exact_err",
    "bias",
    "z",
    "ess_bulk",
    "r_hat",
    "dist_stat",
    "dist_p",
    "p_holm",
    "pass",
    "mdb",
    "verdict",
    "pass_all",
    "flags",
    "acceptance_rate",
    "penalty_mean",
    "delta_sd_median",
    "nonfinite",
    "out_of_range",
)
EPISTEMIC_COLUMNS = (
    "run",
    "observable",
    "n_members",
    "mean",
    "mcse",
    "spread",
    "mcse_part",
    "epistemic_sd",
    "lower",
    "upper",
    "exact",
    "z",
    "inside",
)
IDENTITY_COLUMNS = (
    "run",
    "label",
    "lhs",
    "rhs",
    "residual",
    "mcse",
    "z",
    "p_holm",
    "flagged",
    "n_grad_evals",
)

# How booleans read in a table, and which readings are bad news (highlighted).
_BOOL_WORDS = {
    "pass": ("PASS", "FAIL"),
    "pass_all": ("PASS", "FAIL"),
    "flagged": ("FLAG", "ok"),
    "inside": ("yes", "NO"),
}
_BAD = {"FAIL", "FLAG", "NO"}

_CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; }
td.bad { color: #b00; font-weight: bold; }
img { max-width: 100%; }
"""


class Section(NamedTuple):
    """One section of the report.

    title
        Heading (also names the section's files).
    text
        Plain text; blank lines separate paragraphs.
    table
        Optional table; written whole to ``csv`` and shown restricted to ``columns``.
    columns
        Columns shown (those present); default all.
    figures
        Figures, embedded as PNG in the HTML and written as PNG files for the Markdown.
    csv
        File name of the table's CSV; default ``<slug of title>.csv``.

    Examples
    --------
    >>> import pandas as pd
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(3, 2)); _ = fig.subplots().plot([0, 1], [1, 0])
    >>> table = pd.DataFrame({"run": ["a", "b"], "z": [0.3, 5.1], "pass": [True, False]})
    >>> sec = Section("Bias", "z-scores against the exact chain.", table, columns=["run", "z"],
    ...               figures=[fig], csv="bias.csv")
    >>> sec.title, sec.csv, len(sec.figures)
    ('Bias', 'bias.csv', 1)
    """

    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    columns: Sequence[str] | None = None
    figures: Sequence[Figure] = ()
    csv: str | None = None


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def _cell(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        yes, no = _BOOL_WORDS.get(column, ("yes", "no"))
        return yes if value else no
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def _cells(table: pd.DataFrame, columns: Sequence[str] | None) -> tuple[list[str], list[list]]:
    cols = [c for c in columns if c in table.columns] if columns else list(table.columns)
    rows = [[_cell(c, v) for c, v in zip(cols, row, strict=True)] for row in table[cols].values]
    return cols, rows


def _html_table(table: pd.DataFrame, columns: Sequence[str] | None) -> str:
    cols, rows = _cells(table, columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="bad">{html.escape(v)}</td>' if v in _BAD else f"<td>{html.escape(v)}</td>"
            for v in row
        )
        + "</tr>\n"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _md_table(table: pd.DataFrame, columns: Sequence[str] | None) -> str:
    cols, rows = _cells(table, columns)

    def line(values):
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    return "\n".join([line(cols), line(["---"] * len(cols)), *(line(r) for r in rows)])


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_report(
    out_dir: str | Path, *, title: str, sections: Sequence[Section]
) -> dict[str, list[Path]]:
    """Write ``report.html`` (self-contained), ``report.md`` with its PNGs, and the CSVs.

    Parameters
    ----------
    out_dir
        Folder (created if needed).
    title
        The report's title.
    sections
        :class:`Section` list, e.g. from :func:`report_sections`.

    Returns
    -------
    dict with ``html``, ``md``, ``csv`` and ``png``: lists of the paths written.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(); _ = fig.subplots().plot([0, 1])
    >>> sec = [Section("Numbers", "Two rows.", pd.DataFrame({"a": [1.0, 2.0]})),
    ...        Section("A plot", figures=[fig])]
    >>> out = write_report(tempfile.mkdtemp(), title="Demo", sections=sec)
    >>> [p.name for p in out["csv"] + out["png"]]
    ['numbers.csv', 'a-plot-1.png']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {"html": [], "md": [], "csv": [], "png": []}
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    md = [f"# {title}"]
    seen: set[str] = set()
    for section in sections:
        slug = _slug(section.title)
        while slug in seen:
            slug += "-x"
        seen.add(slug)
        body.append(f'<h2 id="{slug}">{esc(section.title)}</h2>')
        md.append(f"## {section.title}")
        for para in filter(None, (p.strip() for p in section.text.split("\n\n"))):
            body.append(f"<p>{esc(para)}</p>")
            md.append(para)
        if section.table is not None:
            csv = out / (section.csv or f"{slug}.csv")
            section.table.to_csv(csv, index=False)
            written["csv"].append(csv)
            body.append(_html_table(section.table, section.columns))
            body.append(f'<p>Full table: <a href="{esc(csv.name)}">{esc(csv.name)}</a></p>')
            md.append(_md_table(section.table, section.columns))
            md.append(f"Full table: [{csv.name}]({csv.name})")
        for i, fig in enumerate(section.figures, start=1):
            data = _png(fig)
            png = out / f"{slug}-{i}.png"
            png.write_bytes(data)
            written["png"].append(png)
            b64 = base64.b64encode(data).decode("ascii")
            body.append(f'<img alt="{esc(section.title)} {i}" src="data:image/png;base64,{b64}">')
            md.append(f"![{section.title} {i}]({png.name})")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    (out / "report.md").write_text("\n\n".join(md) + "\n", encoding="utf-8")
    written["html"].append(out / "report.html")
    written["md"].append(out / "report.md")
    return written


def _settings_table(settings: Mapping[str, Any]) -> pd.DataFrame:
    def show(v):
        return v if isinstance(v, str | int | float | bool) else json.dumps(v, default=str)

    return pd.DataFrame({"setting": list(settings), "value": [show(v) for v in settings.values()]})


def _method_notes(table: pd.DataFrame) -> str:
    return "\n\n".join(f"{k.replace('_', ' ').capitalize()}: {v}." for k, v in table.attrs.items())


def failed_rows(table: pd.DataFrame, column: str = "pass") -> pd.DataFrame:
    """The rows whose test failed: ``column`` is ``False`` (``None``/NaN means no test).

    Examples
    --------
    >>> t = pd.DataFrame({"observable": ["a", "b", "c"], "pass": [True, False, None]})
    >>> failed_rows(t)["observable"].tolist()
    ['b']
    """
    return table[table[column].apply(lambda v: not pd.isna(v) and not bool(v))]


def _run_verdict(rows: pd.DataFrame) -> str:
    """One run's verdict in words: biased on what, or consistent up to which bias."""
    failed = failed_rows(rows)
    if len(failed):
        return "BIASED on " + ", ".join(failed["observable"].tolist())
    if "verdict" not in rows:
        return "PASS"
    weak = rows[rows["verdict"].astype(str).str.startswith("underpowered")]
    reach = ", ".join(
        f"{o} {m:.2g}" for o, m in zip(rows["observable"], rows["mdb"], strict=True)
        if np.isfinite(m)
    )  # fmt: skip
    text = f"consistent — would have detected a bias of at least: {reach}"
    if len(weak):
        text += " (underpowered: " + ", ".join(weak["observable"].tolist()) + ")"
    return text


def report_sections(
    *,
    settings: Mapping[str, Any] | None = None,
    comparison: pd.DataFrame | None = None,
    epistemic: pd.DataFrame | None = None,
    identities: pd.DataFrame | None = None,
    figures: Mapping[str, Figure | Sequence[Figure]] | None = None,
) -> list[Section]:
    """The standard sections, in order: settings, comparison, epistemic, identities, plots.

    Parameters
    ----------
    settings
        Run settings (target, β, steps, seeds, ...), shown as a two-column table.
    comparison
        From :func:`~uqmcmc.diagnostics.compare_to_exact` (written as ``comparison.csv``).
    epistemic
        From :func:`~uqmcmc.diagnostics.epistemic_spread` (``epistemic.csv``).
    identities
        From :func:`~uqmcmc.diagnostics.check_identities` (``identities.csv``).
    figures
        Mapping section title -> figure(s), one section each, in the given order.

    Examples
    --------
    >>> [s.title for s in report_sections(settings={"L": 8})]
    ['Settings']
    """
    sections = []
    if settings is not None:
        sections.append(Section("Settings", table=_settings_table(settings), csv="settings.csv"))
    if comparison is not None:
        failed = failed_rows(comparison)
        runs = list(dict.fromkeys(comparison.run))
        n_pass = sum(run not in set(failed.run) for run in runs)
        lines = [f"{n_pass} of {len(runs)} runs pass every test."]
        level = comparison.attrs.get("level")
        if level is not None:
            lines[0] += (
                f" Each run is tested at the family-wise level {level:g}, so even if every run"
                f" sampled the exact distribution about {level * len(runs):.1f} of these"
                f" {len(runs)} would fail by chance: a lone failure among many runs is weak"
                " evidence, the same failure in a rerun with another seed is strong."
            )
        if "pass_all" in comparison:
            failed_all = failed_rows(comparison, "pass_all")
            lines.append(
                f"Over the whole table (Holm across every test of every run): "
                f"{len(set(failed_all.run))} of {len(runs)} runs fail."
            )
        for run in runs:
            lines.append(f"{run}: " + _run_verdict(comparison[comparison.run == run]))
        text = "\n\n".join([*lines, _method_notes(comparison)])
        sections.append(
            Section(
                "Comparison with the exact chain",
                text,
                comparison,
                COMPARISON_COLUMNS,
                csv="comparison.csv",
            )
        )
    if epistemic is not None:
        inside = epistemic["inside"].dropna()
        text = (
            f"The exact value lies inside the epistemic interval for {int(inside.sum())} of "
            f"{inside.size} (run, observable) pairs.\n\n" + _method_notes(epistemic)
        )
        sections.append(
            Section("Epistemic error bars", text, epistemic, EPISTEMIC_COLUMNS, csv="epistemic.csv")
        )
    if identities is not None:
        cost = identities.groupby("run", sort=False)["n_grad_evals"].first()
        flagged = identities.groupby("run", sort=False)["flagged"].any()
        lines = [
            f"{run}: {'FLAGGED' if flagged[run] else 'consistent'} "
            f"({int(cost[run])} exact gradients)"
            for run in cost.index
        ]
        text = "\n\n".join([*lines, _method_notes(identities)])
        sections.append(
            Section(
                "Exact-identity checks", text, identities, IDENTITY_COLUMNS, csv="identities.csv"
            )
        )
    for name, figs in (figures or {}).items():
        sections.append(Section(name, figures=[figs] if isinstance(figs, Figure) else list(figs)))
    return sections


# -- output folders -------------------------------------------------------------------------
#: What a uqmcmc run writes at the top of its folder (a folder holding anything else is not
#: replaced, even when told to overwrite).
