"""Shared fixtures: a fresh copy of the toy dataset, its model, groupings and a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import optimizer
from optimizer import CurveOptions, Instance, Model, consolidation_curve, load_instance, load_model
from optimizer.resources import data_path
from optimizer.run import run_inputs

CLI_CODE = "from optimizer.cli import main; main()"

# A sites.csv for the toy: one site per body, same ids (so edges.csv still
# connects them), with every optional column. a1 has a blank fixed_cost (the
# model's agency_fixed_cost, 5000, applies), a2 costs 7000 and can buy at most
# GBP 150,000/yr, a3 is closed, s1 must stay open, a4's status is blank.
TOY_SITES = """\
site_id,name,nation,x_km,y_km,fixed_cost,capacity,status,body_id
a1,Alderley,Northland,0,0,,,candidate,a1
a2,Brackwell,Northland,10,0,7000,150000,candidate,a2
a3,Cresting,Northland,20,0,,,closed,a3
a4,Dunmere,Northland,10,15,,,,a4
s1,Eastwick,Southland,0,-40,,,open,s1
s2,Fallow,Southland,12,-40,,,candidate,s2
"""

# The agency of each body in the toy's three-agency grouping (a2, a4, s1).
THREE_AGENCIES = {"a1": "a2", "a2": "a2", "a3": "a2", "a4": "a4", "s1": "s1", "s2": "s1"}

CliRunner = Callable[..., tuple[int, str, str]]


def run_cli(
    *args: object, cwd: Path | None = None, columns: int | None = 200, timeout: float = 300
) -> tuple[int, str, str]:
    """Run the real ``consolidate`` entry point in a fresh interpreter.

    ``columns`` sets the terminal width rich assumes (``None``: rich's own default);
    past ``timeout`` seconds, :class:`subprocess.TimeoutExpired` is raised.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["NO_COLOR"] = "1"
    if columns is not None:
        env["COLUMNS"] = str(columns)
    proc = subprocess.run(
        [sys.executable, "-c", CLI_CODE, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    """Run the CLI with an empty scratch folder as the working directory."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    def run(*args: object, columns: int | None = 200) -> tuple[int, str, str]:
        return run_cli(*args, cwd=workdir, columns=columns)

    return run


@pytest.fixture
def toy_folder(tmp_path: Path) -> Path:
    """A fresh, editable copy of the shipped toy dataset."""
    target = tmp_path / "toy-copy"
    shutil.copytree(data_path("datasets", "toy"), target)
    return target


@pytest.fixture
def toy_model_path() -> Path:
    """The shipped toy model file."""
    return data_path("models", "toy.toml")


@pytest.fixture
def toy_model(toy_model_path: Path) -> Model:
    """The toy model, loaded."""
    return load_model(toy_model_path)


@pytest.fixture
def toy_instance(toy_folder: Path, toy_model: Model) -> Instance:
    """The toy dataset loaded from its fresh copy."""
    return load_instance(toy_folder, toy_model)


def _grouping(agency_of: dict[str, str]) -> pd.DataFrame:
    spend = pd.read_csv(data_path("datasets", "toy", "spend.csv"), dtype=str)
    return spend.assign(site_id=spend["body_id"].map(agency_of))[["body_id", "category", "site_id"]]


@pytest.fixture
def alone_grouping() -> pd.DataFrame:
    """Grouping 1: every body buys for itself (rows in spend.csv order, rows 2..12)."""
    return _grouping({b: b for b in THREE_AGENCIES})


@pytest.fixture
def three_agency_grouping() -> pd.DataFrame:
    """Grouping 2: agencies a2, a4 and s1 (rows in spend.csv order, rows 2..12)."""
    return _grouping(THREE_AGENCIES)


@pytest.fixture
def write_groupings_csv(tmp_path: Path) -> Callable[[pd.DataFrame, str], Path]:
    """Write a grouping table as CSV in tmp_path and return its path."""

    def write(frame: pd.DataFrame, name: str = "groupings.csv") -> Path:
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return path

    return write


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real curve run of the toy dataset, levels 6 to 3 (2 is infeasible); read only."""
    out = tmp_path_factory.mktemp("toy-run")
    options = CurveOptions(levels=(6, 5, 4, 3, 2))
    consolidation_curve(optimizer.load("toy"), options, out, inputs=run_inputs("toy", None))
    return out
