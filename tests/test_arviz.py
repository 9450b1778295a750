"""Both ArviZ lines (0.x on Python 3.11, 1.x on Python >= 3.12) give the same numbers and read
each other's netCDF files."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from uqmcmc import _arviz

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from make_arviz_files import draws  # noqa: E402

FILES = sorted(DATA.glob("arviz*.nc"))


def test_both_lines_have_a_file():
    assert [f.name for f in FILES] == ["arviz0.nc", "arviz1.nc"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_reads_every_lines_file_with_identical_numbers(path):
    idata = _arviz.load(path)
    posterior, stats = draws()
    post = _arviz.group(idata, "posterior")
    for name, values in posterior.items():
        np.testing.assert_array_equal(post[name].values, values)
    ss = _arviz.group(idata, "sample_stats")
    for name, values in stats.items():
        np.testing.assert_array_equal(ss[name].values, values)
    attrs = _arviz.attrs(idata)
    assert int(attrs["L"]) == 4 and attrs["backend"] == "exact"
    assert post["G"].dims == ("chain", "draw", "r")
    # The statistics the writer computed (under its own ArviZ line) are what this line computes.
    expected = json.loads(attrs["expected"])
    got = _arviz.summarize(post["abs_m"].values)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


def _quantile_ess(x: np.ndarray, prob: float) -> float:
    """ESS of the indicator ``x <= q(prob)``, through ArviZ's quantile ESS (same on both lines)."""
    ds = xr.Dataset({"v": (("chain", "draw"), x)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.asarray(_arviz.az.ess(ds, method="quantile", prob=prob)["v"]))


def test_tail_ess_is_the_5_and_95_percent_definition():
    """Tail ESS = min(ESS of the 5 % and of the 95 % quantile indicator) (Vehtari et al. 2021),
    whatever the installed ArviZ's own default (1.x would use 5.5 %/94.5 %)."""
    x = draws()[0]["abs_m"]
    expected = min(_quantile_ess(x, 0.05), _quantile_ess(x, 0.95))
    assert _arviz.ess(x, "tail") == pytest.approx(expected, rel=1e-12)
    # The definitions differ measurably on this data, so the check can fail.
    other = min(_quantile_ess(x, 0.055), _quantile_ess(x, 0.945))
    assert abs(other - expected) > 1e-3 * expected


def test_summary_table_is_version_independent():
    idata = _arviz.load(DATA / "arviz0.nc")
    table = _arviz.summary(idata, var_names=["abs_m", "G"])
    assert list(table.index) == ["abs_m", "G[0]", "G[1]", "G[2]"]
    assert table.loc["abs_m", "ess_tail"] == pytest.approx(
        json.loads(_arviz.attrs(idata)["expected"])["ess_tail"], rel=1e-9
    )
