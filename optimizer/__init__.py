"""The procurement consolidation optimizer: the Python API.

Load a dataset under a model, solve one consolidation level or sweep the
curve, cost any grouping, and compare scenarios. Everything returns pandas,
and every result plots in one line.

=================================  ========================================================
the command line                   Python
=================================  ========================================================
``consolidate curve``              :func:`consolidation_curve` with :class:`CurveOptions`
                                   (levels from :func:`parse_levels`); ``out=`` for the
                                   run folder, ``resume=True``
``consolidate solve``              :func:`solve_level` with :class:`SolverOptions`
                                   (``level=None`` for ``best``); :func:`write_groupings`
                                   and :meth:`SolveResult.summary` for ``--out``
``consolidate solve --write-lp``   :func:`write_model`
``consolidate evaluate``           :func:`evaluate` on :func:`read_groupings`
``consolidate datasets list``      :func:`datasets`
``consolidate datasets show``      :func:`dataset_summary`
``consolidate datasets export``    :func:`export_dataset`
``consolidate datasets synth``     ``write_synthetic_dataset(folder, bodies, seed)``
``consolidate export``             ``export_level(open_run(folder), level, path)``
``consolidate plot``               ``plot_curve``, ``plot_breakdown``, ``plot_map`` (or
                                   ``Curve.plot``, ``SolveResult.plot``), ``save_plot``
``consolidate report``             ``write_report(open_run(folder), path)``
``consolidate sweep``              ``run_sweep(load_sweep(path), out)``
=================================  ========================================================

Results read like the domain: :class:`Curve`, :class:`SolveResult` and
:class:`Evaluation` have ``.to_frame()`` (columns named as in ``curve.csv``),
``.breakdown`` and ``.plot()``; a curve written to a run folder has
``.groupings``. Scenario comparison is :func:`compare_curves`,
:func:`plot_comparison`, :func:`grouping_diff` and :func:`scaled`
(:mod:`optimizer.compare`). The names shown as code in the right column are
imported on first use: plotting, export, reports and sweeps pull in
matplotlib and other libraries the rest does not need.

Examples
--------
Cost the status quo of the toy dataset (every body buys alone):

>>> import optimizer
>>> inst = optimizer.load("toy")
>>> alone = inst.spend.assign(site_id=inst.spend["body_id"])
>>> optimizer.evaluate(inst, alone).total
506000.0

Build the toy's model in code instead of TOML (validated the same way) and
solve three agencies:

>>> from math import inf
>>> from optimizer import Band, Category, Model, Scenario
>>> care = Category(desk_cost=1000, distance_cost=100, radius_km=12,
...                 bands=(Band(0, 1e5, 0.0), Band(1e5, inf, 0.1)))
>>> ict = Category(desk_cost=2000, bands=((0, 5e4, 0.0), (5e4, inf, 0.2)))
>>> model = Model(Scenario(agency_fixed_cost=5000), {"care": care, "ict": ict})
>>> model.categories == inst.model.categories
True
>>> result = optimizer.solve_level(optimizer.load("toy", model), 3)
>>> result.status, result.objective, result.open_sites
('optimal', 467146.0, ['a2', 'a4', 's1'])

A short curve, as a table:

>>> curve = optimizer.consolidation_curve(inst, optimizer.CurveOptions(levels=(6, 4, 3)))
>>> curve.to_frame()[["level", "total", "savings_pct"]].round(2)
   level     total  savings_pct
0      6  506000.0         0.00
1      4  473110.0         6.50
2      3  467146.0         7.68
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from optimizer import catalog
from optimizer.catalog import load
from optimizer.compare import compare_curves, grouping_diff, plot_comparison, scaled
from optimizer.curve import (
    Curve,
    CurveOptions,
    consolidation_curve,
    default_levels,
    parse_levels,
    status_quo,
)
from optimizer.engine import SolveResult, solve_level, write_model
from optimizer.errors import DataValidationError, InfeasibleError, OptimizerError, SolverError
from optimizer.evaluate import Evaluation, Violation, evaluate
from optimizer.instance import Instance, load_instance
from optimizer.model import Band, Category, Model, Scenario
from optimizer.results import atomic_write_text, read_groupings, write_groupings
from optimizer.schema import load_model
from optimizer.solve import SolverOptions

_LAZY = {
    "plot_curve": ("optimizer.plot", "plot_curve"),
    "plot_breakdown": ("optimizer.plot", "plot_breakdown"),
    "plot_map": ("optimizer.plot", "plot_map"),
    "save_plot": ("optimizer.plot", "save"),
    "Run": ("optimizer.run", "Run"),
    "open_run": ("optimizer.run", "open_run"),
    "export_level": ("optimizer.export", "export_level"),
    "detail_frame": ("optimizer.export", "detail_frame"),
    "write_report": ("optimizer.report", "write_report"),
    "write_synthetic_dataset": ("optimizer.synthetic", "write_dataset"),
    "load_sweep": ("optimizer.sweep", "load_sweep"),
    "run_sweep": ("optimizer.sweep", "run_sweep"),
}


def __getattr__(name: str) -> Any:
    """Import plotting, export, report, sweep and synthetic-data functions on first use."""
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


def datasets() -> pd.DataFrame:
    """The shipped datasets (``consolidate datasets list``).

    Returns
    -------
    DataFrame
        ``name, default_model, description``, one row per dataset.

    Examples
    --------
    >>> datasets()["name"].tolist()
    ['toy', 'uk-councils']
    """
    rows = [(name, catalog.DEFAULT_MODELS[name], text) for name, text in catalog.DATASETS.items()]
    return pd.DataFrame(rows, columns=["name", "default_model", "description"])


def dataset_summary(instance: Instance) -> dict[str, pd.DataFrame]:
    """Bodies and spend by nation, tier (when the bodies have one) and category.

    The tables ``consolidate datasets show`` prints.

    Parameters
    ----------
    instance : Instance
        From :func:`load`.

    Returns
    -------
    dict of str to DataFrame
        Keyed ``nation``, ``tier`` (if present) and ``category``; each table
        is indexed by that key with columns ``bodies`` and ``spend`` (GBP/yr).

    Examples
    --------
    >>> dataset_summary(load("toy"))["nation"].reset_index()
          nation  bodies     spend
    0  Northland       4  330000.0
    1  Southland       2  130000.0
    """
    spend = instance.spend.join(instance.bodies, on="body_id")
    keys = ["nation", "tier"] if "tier" in instance.bodies.columns else ["nation"]
    out = {}
    for key in [*keys, "category"]:
        table = spend.groupby(key).agg(bodies=("body_id", "nunique"), spend=("spend", "sum"))
        if key in instance.bodies.columns:
            counts = instance.bodies.groupby(key).size()
            table = table.reindex(counts.index).assign(bodies=counts).fillna({"spend": 0.0})
        out[key] = table
    return out


def export_dataset(name: str, folder: Path | str) -> Path:
    """Write a shipped dataset as a folder in the public data contract.

    The generated network is written as ``edges.csv``, so the copy gives the
    same distances and can be edited and loaded as the user's own data
    (``consolidate datasets export``).

    Parameters
    ----------
    name : str
        A shipped dataset (:func:`datasets`).
    folder : path-like
        Created if needed; files already there are replaced.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    DataValidationError
        For an unknown dataset name.
    """
    if name not in catalog.DATASETS:
        raise DataValidationError(
            [f"(datasets export) | unknown dataset {name!r}; see 'consolidate datasets list'"]
        )
    instance = load(name)
    source = catalog.dataset_folder(name)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for file in ("bodies.csv", "spend.csv", "sites.csv", "edges.csv"):
        if (source / file).exists():
            shutil.copyfile(source / file, target / file)
    if not (target / "edges.csv").exists():
        edges = instance.edges.to_csv(index=False, lineterminator="\n")
        atomic_write_text(target / "edges.csv", edges)
    return target


__all__ = [
    "Band",
    "Category",
    "Curve",
    "CurveOptions",
    "DataValidationError",
    "Evaluation",
    "InfeasibleError",
    "Instance",
    "Model",
    "OptimizerError",
    "Scenario",
    "SolveResult",
    "SolverError",
    "SolverOptions",
    "Violation",
    "compare_curves",
    "consolidation_curve",
    "dataset_summary",
    "datasets",
    "default_levels",
    "evaluate",
    "export_dataset",
    "grouping_diff",
    "load",
    "load_instance",
    "load_model",
    "parse_levels",
    "plot_comparison",
    "read_groupings",
    "scaled",
    "solve_level",
    "status_quo",
    "write_groupings",
    "write_model",
]
