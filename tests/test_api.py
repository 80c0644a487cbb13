"""The Python API as the notebooks use it: names, models in code, results, CLI parity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from conftest import CliRunner

import optimizer
from optimizer import Band, Category, Model, Scenario
from optimizer.cli import app

# Every CLI command and the Python names that do the same; a new command
# without an entry here fails test_every_cli_command_has_a_python_equivalent.
CLI_EQUIVALENTS = {
    "curve": ["consolidation_curve", "parse_levels", "CurveOptions"],
    "solve": ["solve_level", "write_groupings", "write_model", "SolverOptions"],
    "evaluate": ["evaluate", "read_groupings"],
    "datasets list": ["datasets"],
    "datasets show": ["dataset_summary"],
    "datasets export": ["export_dataset"],
    "datasets synth": ["write_synthetic_dataset"],
    "export": ["open_run", "export_level"],
    "plot": ["plot_curve", "plot_breakdown", "plot_map", "save_plot"],
    "report": ["open_run", "write_report"],
    "sweep": ["load_sweep", "run_sweep"],
}

TOY_TOML_ERRORS = """\
[scenario]
agency_fixed_cost = -5

[categories.ict]
desk_cost = 2000
bands = [[0, 50000, 0.0], [40000, inf, 0.2]]
"""


def cli_commands(command: Any, prefix: str = "") -> list[str]:
    """Every leaf command's full name, e.g. ``datasets export``."""
    children = getattr(command, "commands", None)
    if not children:
        return [prefix.strip()]
    return [name for key, sub in children.items() for name in cli_commands(sub, f"{prefix}{key} ")]


def title(ax: Any) -> str:
    return " ".join(ax.get_title(loc=where) for where in ("left", "center", "right"))


def toy_model_in_code() -> Model:
    care = Category(
        desk_cost=1000,
        distance_cost=100,
        radius_km=12,
        bands=(Band(0, 1e5, 0.0), Band(1e5, math.inf, 0.1)),
    )
    ict = Category(desk_cost=2000, bands=((0, 5e4, 0.0), (5e4, math.inf, 0.2)))
    return Model(Scenario(agency_fixed_cost=5000), {"care": care, "ict": ict})


# --- names ----------------------------------------------------------------


def test_every_public_name_resolves() -> None:
    for name in optimizer.__all__:
        assert getattr(optimizer, name) is not None, name
    for name in optimizer._LAZY:
        assert callable(getattr(optimizer, name)), name
        assert name in dir(optimizer)
    with pytest.raises(AttributeError, match="no attribute 'plot_everything'"):
        _ = optimizer.plot_everything


def test_every_cli_command_has_a_python_equivalent() -> None:
    commands = sorted(cli_commands(typer.main.get_command(app)))
    assert commands == sorted(CLI_EQUIVALENTS)
    for command, names in CLI_EQUIVALENTS.items():
        for name in names:
            assert hasattr(optimizer, name), f"{command}: optimizer.{name} is missing"
            assert name in optimizer.__doc__, f"{command}: optimizer.{name} is not documented"


# --- models built in code ---------------------------------------------------


def test_model_built_in_code_equals_the_toml_one_and_solves_the_same() -> None:
    model = toy_model_in_code()
    toy = optimizer.load("toy")
    assert model.categories == toy.model.categories
    assert model.categories["care"].name == "care"
    assert all(isinstance(b, Band) for b in model.categories["ict"].bands)
    mine = optimizer.solve_level(optimizer.load("toy", model), 3)
    assert mine.objective == pytest.approx(optimizer.solve_level(toy, 3).objective)


def test_code_model_gets_the_same_messages_as_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TOY_TOML_ERRORS, encoding="utf-8")
    with pytest.raises(optimizer.DataValidationError) as from_file:
        optimizer.load_model(path)
    bands = ((0, 50000, 0.0), (40000, math.inf, 0.2))
    with pytest.raises(optimizer.DataValidationError) as from_code:
        Model(Scenario(agency_fixed_cost=-5), {"ict": Category(desk_cost=2000, bands=bands)})
    file_lines = [line.replace("(bad.toml,", "(model,") for line in from_file.value.problems]
    assert sorted(from_code.value.problems) == sorted(file_lines)
    assert len(file_lines) == 2


def test_changing_a_model_is_validated_and_names_must_match_keys() -> None:
    model = toy_model_in_code()
    with pytest.raises(optimizer.DataValidationError, match=r"categories.care.bands\[2\]"):
        model.with_category("care", bands=((0, 10, 0.2), (10, math.inf, 0.1)))
    with pytest.raises(optimizer.DataValidationError, match="rate must be in"):
        optimizer.scaled(model, discounts=6.0)
    with pytest.raises(optimizer.DataValidationError, match="differs from its key 'ict'"):
        Model(Scenario(), {"ict": Category("care")})
    with pytest.raises(optimizer.DataValidationError, match="expected true or false"):
        model.with_scenario(same_nation="yes")


# --- results ----------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_curve(tmp_path_factory: pytest.TempPathFactory) -> optimizer.Curve:
    out = tmp_path_factory.mktemp("run") / "toy"
    levels = optimizer.CurveOptions(levels=(6, 4, 3, 2))
    return optimizer.consolidation_curve(optimizer.load("toy"), levels, out=out)


def test_curve_groupings_breakdown_and_plots(toy_curve: optimizer.Curve) -> None:
    toy = optimizer.load("toy")
    frame = toy_curve.to_frame()
    assert sorted(toy_curve.groupings) == [3, 4, 6]  # level 2 is infeasible: no grouping
    for level, grouping in toy_curve.groupings.items():
        total = frame.set_index("level").loc[level, "total"]
        assert optimizer.evaluate(toy, grouping).total == pytest.approx(total)
    breakdown = toy_curve.breakdown
    assert list(breakdown.index) == [6, 4, 3, 2]
    terms = breakdown[["agencies", "desks", "purchases", "distance"]].sum(axis=1)
    assert terms.loc[[6, 4, 3]].tolist() == pytest.approx(breakdown["total"].loc[[6, 4, 3]])
    expected = optimizer.plot_curve(toy_curve.to_frame()).get_ylabel()
    assert toy_curve.plot().get_ylabel() == expected != ""
    assert [t.get_text() for t in toy_curve.plot(kind="breakdown").get_xticklabels()] == [
        "6",
        "4",
        "3",
    ]
    with pytest.raises(ValueError, match="kind"):
        toy_curve.plot(kind="pie")


def test_curve_without_a_folder_says_where_groupings_are() -> None:
    curve = optimizer.consolidation_curve(optimizer.load("toy"), optimizer.CurveOptions((6, 3)))
    with pytest.raises(ValueError, match="out="):
        _ = curve.groupings


def test_solve_result_and_evaluation_frames_match_the_curve(toy_curve: optimizer.Curve) -> None:
    toy = optimizer.load("toy")
    result = optimizer.solve_level(toy, 3)
    row = result.to_frame()
    curve_row = toy_curve.to_frame().set_index("level").loc[3]
    for column in ("total", "agencies", "desks", "purchases", "distance", "discounts"):
        assert row.loc[0, column] == pytest.approx(curve_row[column]), column
    assert row.loc[0, "status"] == "optimal"
    evaluation = optimizer.evaluate(toy, result.groupings)
    pd.testing.assert_frame_equal(
        evaluation.groupings.reset_index(drop=True),
        result.groupings[["body_id", "category", "site_id"]].astype(str).reset_index(drop=True),
    )
    frame = evaluation.to_frame()
    assert frame.loc[0, "total"] == pytest.approx(result.objective)
    assert bool(frame.loc[0, "feasible"]) and frame.loc[0, "violations"] == 0
    assert "3 agencies" in title(result.plot(toy))
    assert "3 agencies" in title(evaluation.plot(toy))


def test_solve_result_frames_stack_into_a_breakdown_plot() -> None:
    toy = optimizer.load("toy")
    frame = pd.concat(
        [optimizer.solve_level(toy, k).to_frame() for k in (5, 4, 3)], ignore_index=True
    )
    ax = optimizer.plot_breakdown(frame)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "4", "3"]


# --- datasets: the CLI's commands from Python -------------------------------


def test_datasets_and_summary() -> None:
    table = optimizer.datasets()
    assert table["name"].tolist() == ["toy", "uk-councils"]
    assert table.set_index("name").loc["uk-councils", "default_model"] == "uk-default"
    toy = optimizer.load("toy")
    summary = optimizer.dataset_summary(toy)
    assert list(summary) == ["nation", "category"]
    total = toy.spend["spend"].sum()
    for frame in summary.values():
        assert frame["spend"].sum() == pytest.approx(total)
    assert summary["nation"]["bodies"].to_dict() == {"Northland": 4, "Southland": 2}
    assert summary["category"]["bodies"].to_dict() == {"care": 6, "ict": 5}


def test_export_dataset_writes_what_the_cli_writes(tmp_path: Path, cli: CliRunner) -> None:
    mine = optimizer.export_dataset("toy", tmp_path / "python")
    code, _, err = cli("datasets", "export", "toy", tmp_path / "cli")
    assert code == 0, err
    names = sorted(p.name for p in mine.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "cli").iterdir())
    for name in names:
        assert (mine / name).read_text() == (tmp_path / "cli" / name).read_text(), name
    copy = optimizer.load(mine, "toy")
    assert optimizer.solve_level(copy, 3).objective == pytest.approx(467146.0)
    with pytest.raises(optimizer.DataValidationError, match="unknown dataset"):
        optimizer.export_dataset("atlantis", tmp_path / "nowhere")
