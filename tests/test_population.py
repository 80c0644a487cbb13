"""The optional ``population`` column of bodies.csv: loaded, validated, refused with a place.

The toy's bodies.csv rows are a1=2, a2=3, a3=4, a4=5, s1=6, s2=7 (the header is row 1).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import CliRunner

from optimizer import DataValidationError, Model, load_instance

POPULATIONS = {"a1": "1200", "a2": "3400.5", "a3": "0", "a4": "1e4", "s1": "560", "s2": "78"}


def with_population(folder: Path, values: dict[str, str]) -> None:
    """Give the toy's bodies.csv a ``population`` column with these cells."""
    path = folder / "bodies.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["population"] = frame["body_id"].map(values)
    frame.to_csv(path, index=False)


def test_population_column_is_loaded_as_numbers(toy_folder: Path, toy_model: Model) -> None:
    with_population(toy_folder, POPULATIONS)
    bodies = load_instance(toy_folder, toy_model).bodies
    assert bodies["population"].dtype == float
    expected = {"a1": 1200.0, "a2": 3400.5, "a3": 0.0, "a4": 1e4, "s1": 560.0, "s2": 78.0}
    assert bodies["population"].to_dict() == expected


def test_population_column_is_optional(toy_folder: Path, toy_model: Model) -> None:
    assert "population" not in load_instance(toy_folder, toy_model).bodies.columns


BAD = [
    ("negative", "a2", "-5", 3, "expected a finite number >= 0 (residents), got '-5'"),
    ("text", "a4", "many", 5, "expected a finite number >= 0 (residents), got 'many'"),
    ("infinite", "s1", "inf", 6, "expected a finite number >= 0 (residents), got 'inf'"),
    ("nan", "s2", "nan", 7, "expected a finite number >= 0 (residents), got 'nan'"),
    ("blank", "a1", "", 2, "blank population: when the column is present every row needs a value"),
]


@pytest.mark.parametrize(
    ("body", "cell", "row", "message"), [pytest.param(*case[1:], id=case[0]) for case in BAD]
)
def test_bad_population_is_refused_with_file_row_and_column(
    toy_folder: Path, toy_model: Model, body: str, cell: str, row: int, message: str
) -> None:
    with_population(toy_folder, {**POPULATIONS, body: cell})
    with pytest.raises(DataValidationError) as info:
        load_instance(toy_folder, toy_model)
    assert info.value.problems == [f"(bodies.csv, row {row}, column 'population') | {message}"]


def test_every_bad_population_is_listed(toy_folder: Path, toy_model: Model) -> None:
    with_population(toy_folder, {**POPULATIONS, "a1": "-1", "s2": "x"})
    with pytest.raises(DataValidationError) as info:
        load_instance(toy_folder, toy_model)
    assert [line.split(" | ")[0] for line in info.value.problems] == [
        "(bodies.csv, row 2, column 'population')",
        "(bodies.csv, row 7, column 'population')",
    ]


@pytest.mark.parametrize(
    ("body", "cell", "row", "message"), [pytest.param(*case[1:], id=case[0]) for case in BAD]
)
def test_cli_exits_2_on_a_bad_population(
    cli: CliRunner,
    toy_folder: Path,
    toy_model_path: Path,
    body: str,
    cell: str,
    row: int,
    message: str,
) -> None:
    with_population(toy_folder, {**POPULATIONS, body: cell})
    code, out, err = cli("datasets", "show", toy_folder, "--model", toy_model_path)
    assert code == 2
    assert "Traceback" not in err
    where = f"(bodies.csv, row {row}, column 'population')"
    assert err == f"error: 1 problem in the input:\n{where} | {message}\n"
    assert out == ""


def test_cli_accepts_a_good_population(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path
) -> None:
    with_population(toy_folder, POPULATIONS)
    code, out, err = cli("datasets", "show", toy_folder, "--model", toy_model_path)
    assert code == 0, err
    assert "toy-copy: 6 bodies" in out
