"""Open a finished (or partly finished) curve run folder.

A run folder written by ``consolidate curve --out DIR`` holds ``run.json``,
``curve.csv``, ``summary.json`` and ``groupings/level-K.csv``. ``run.json``
records the dataset and model the run was made from (``inputs``); the
instance is loaded again from them and checked against the hash recorded
beside them, so every export, plot and report costs the same data the run
solved. Each level's grouping is re-costed by the evaluator and must match
its row of ``curve.csv``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from optimizer import catalog
from optimizer.curve import EMPTY, CurveOptions, fingerprint, status_quo_evaluation
from optimizer.errors import DataValidationError
from optimizer.evaluate import Evaluation, evaluate, status_open
from optimizer.instance import Instance
from optimizer.results import read_groupings

TOLERANCE = 1e-6


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds.

    For writers that need a file name (Excel, Parquet, images); the file is
    created with the usual permissions. Text goes through
    :func:`optimizer.results.atomic_write_text`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_inputs(data: str, model: str | None) -> dict[str, str]:
    """What to record in ``run.json`` so the run can be reopened anywhere.

    Shipped names stay names; files and folders become absolute paths.

    Examples
    --------
    >>> run_inputs("toy", None)
    {'data': 'toy', 'model': 'toy'}
    """
    shipped = data in catalog.DATASETS
    data_ref = data if shipped else str(Path(data).resolve())
    if model is None:
        model_ref = catalog.DEFAULT_MODELS.get(data, "")
    elif catalog.model_path(model) == Path(model):
        model_ref = str(Path(model).resolve())
    else:
        model_ref = model
    return {"data": data_ref, "model": model_ref}


@dataclass(frozen=True, eq=False)
class Run:
    """A curve run folder, with the instance it was solved on.

    Attributes
    ----------
    folder : Path
    instance : Instance
    curve : DataFrame
        ``curve.csv``, most agencies first.
    summary : dict
        ``summary.json``.
    record : dict
        ``run.json``.
    """

    folder: Path
    instance: Instance
    curve: pd.DataFrame
    summary: dict[str, Any]
    record: dict[str, Any]

    @property
    def status_quo_total(self) -> float:
        """The status quo's total, GBP/yr."""
        return float(self.summary["status_quo_total"])

    @property
    def recommended_level(self) -> int:
        """The level with the lowest total (ties go to fewer agencies)."""
        if "recommended_level" not in self.summary:
            raise DataValidationError(
                [f"({self.folder / 'summary.json'}) | no level of this run has a grouping"]
            )
        return int(self.summary["recommended_level"])

    @property
    def levels(self) -> list[int]:
        """The levels with a grouping, most agencies first."""
        solved = self.curve[~self.curve["status"].isin(EMPTY)]["level"]
        return [int(k) for k in solved if self._grouping_path(int(k)).exists()]

    @property
    def open_sites(self) -> tuple[str, ...]:
        """Sites open at every level: ``--keep-open`` and those of status ``open``."""
        kept = [str(s) for s in self.record.get("options", {}).get("keep_open", ())]
        return tuple(dict.fromkeys([*kept, *status_open(self.instance)]))

    def status_quo(self) -> Evaluation:
        """The status quo re-costed (``summary.json``'s ``status_quo_total``).

        Every body buys through the site it hosts and the sites of status
        ``open`` are open; ``--keep-open`` is the run's choice, not today's.
        """
        return status_quo_evaluation(self.instance)

    def idle_sites(self, level: int) -> tuple[str, ...]:
        """The agencies open at ``level`` with no member (``levels/level-K.json``'s ``idle_sites``).

        Besides the forced ones (:attr:`open_sites`); the groupings file has
        no row for them, yet they are open and cost their fixed cost.
        """
        path = self.folder / "levels" / f"level-{level}.json"
        idle = (_json(path) if path.exists() else {}).get("idle_sites", [])
        if not isinstance(idle, list) or not all(isinstance(s, str) for s in idle):
            raise DataValidationError(
                [f"({path}) | idle_sites must be a list of site ids, got {json.dumps(idle)[:80]}"]
            )
        return tuple(idle)

    def unlisted_sites(self, level: int) -> tuple[str, ...]:
        """The agencies open at ``level`` that its groupings file cannot name.

        :attr:`open_sites` and :meth:`idle_sites`: whatever re-costs or maps
        the level opens them too.
        """
        return tuple(dict.fromkeys(self.open_sites + self.idle_sites(level)))

    def row(self, level: int) -> dict[str, Any]:
        """The row of ``curve.csv`` for ``level``."""
        self._check_level(level)
        rows = self.curve[self.curve["level"] == level]
        return dict(rows.iloc[0])

    def groupings(self, level: int) -> pd.DataFrame:
        """The grouping of ``level`` as written by the run."""
        self._check_level(level)
        return read_groupings(self._grouping_path(level))

    def evaluation(self, level: int) -> Evaluation:
        """Re-cost ``level``'s grouping; it must match its row of ``curve.csv``."""
        result = evaluate(self.instance, self.groupings(level), self.unlisted_sites(level))
        expected = float(self.row(level)["total"])
        if not result.feasible:
            broken = "; ".join(str(v) for v in result.violations[:3])
            raise DataValidationError(
                [
                    f"({self._grouping_path(level)}) | breaks the rules of this data and"
                    f" model ({broken}): the folder or its data was edited or is damaged"
                ]
            )
        if not _close(result.total, expected):
            raise DataValidationError(
                [
                    f"({self._grouping_path(level)}) | costs {result.total:,.2f}, but"
                    f" curve.csv says {expected:,.2f}: the folder was edited or is damaged"
                ]
            )
        return result

    def _grouping_path(self, level: int) -> Path:
        return self.folder / "groupings" / f"level-{level}.csv"

    def _check_level(self, level: int) -> None:
        if level not in self.levels:
            shown = ", ".join(str(k) for k in self.levels) or "none"
            raise DataValidationError(
                [f"(--level) | level {level} has no grouping in {self.folder}; levels: {shown}"]
            )


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def open_run(folder: Path | str, instance: Instance | None = None) -> Run:
    """Open a curve run folder and reload the instance it was solved on.

    Parameters
    ----------
    folder : path-like
        A folder written by ``consolidate curve --out`` or
        :func:`optimizer.curve.consolidation_curve`.
    instance : Instance, optional
        The instance, when ``run.json`` does not record where it came from
        (a run made from Python without ``inputs``); it must hash the same.

    Raises
    ------
    DataValidationError
        When a file is missing or unreadable, or the data and model have
        changed since the run.
    """
    folder = Path(folder)
    record = _json(folder / "run.json")
    summary = _json(folder / "summary.json")
    curve = _curve(folder / "curve.csv")
    if instance is None:
        instance = _reload(folder, record)
    if fingerprint(instance, CurveOptions(levels=()))["instance"] != record.get("instance"):
        raise DataValidationError(
            [
                f"({folder / 'run.json'}) | the dataset or model differs from the one"
                " this run solved; use the same data and model"
            ]
        )
    return Run(folder, instance, curve, summary, record)


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataValidationError(
            [f"({path}) | not found: is {path.parent} a folder written by 'consolidate curve'?"]
        )
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataValidationError([f"({path}) | cannot be read: {err}"]) from None
    if not isinstance(payload, dict):
        raise DataValidationError([f"({path}) | expected a JSON object"])
    return payload


def _curve(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataValidationError(
            [f"({path}) | not found: is {path.parent} a folder written by 'consolidate curve'?"]
        )
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataValidationError([f"({path}) | cannot be read: {err}"]) from None
    missing = [c for c in ("level", "total", "status") if c not in frame.columns]
    if missing:
        raise DataValidationError([f"({path}) | missing columns {missing}"])
    return frame.sort_values("level", ascending=False).reset_index(drop=True)


def _reload(folder: Path, record: dict[str, Any]) -> Instance:
    inputs = record.get("inputs")
    if not isinstance(inputs, dict) or not inputs.get("data") or not inputs.get("model"):
        raise DataValidationError(
            [
                f"({folder / 'run.json'}) | does not record the dataset and model;"
                " open it from Python with open_run(folder, instance)"
            ]
        )
    return catalog.load(str(inputs["data"]), str(inputs["model"]))
