"""The real ``consolidate`` command, run in a subprocess on real files."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import CliRunner, run_cli

from optimizer import evaluate, load_instance, load_model
from optimizer.resources import data_path

HAND = {
    "alone": {"agencies": 30000.0, "desks": 16000.0, "purchases": 460000.0, "savings": 0.0,
              "distance": 0.0, "total": 506000.0},
    "three": {"agencies": 15000.0, "desks": 9000.0, "purchases": 443000.0, "savings": 17000.0,
              "distance": 146.0, "total": 467146.0},
}

WriteCsv = Callable[[pd.DataFrame, str], Path]


def table_row(label: str, *cells: str) -> str:
    """A regex for one row of a rich table: label and cells separated by box bars."""
    return r"\s*│\s*".join([re.escape(label), *map(re.escape, cells)])


@pytest.fixture
def three_csv(write_groupings_csv: WriteCsv, three_agency_grouping: pd.DataFrame) -> Path:
    return write_groupings_csv(three_agency_grouping, "three.csv")


# ---------------------------------------------------------------------- evaluate


def test_evaluate_prints_the_breakdown(
    cli: CliRunner, toy_model_path: Path, three_csv: Path
) -> None:
    code, out, err = cli("evaluate", "--data", "toy", "--model", toy_model_path,
                         "--groupings", three_csv)
    assert code == 0, err
    assert err == ""
    assert "Cost breakdown at level 3" in out  # the title wraps to the table's width
    for term, value in [("agencies", "15,000.00"), ("desks", "9,000.00"),
                        ("purchases", "443,000.00"), ("savings", "17,000.00"),
                        ("distance", "146.00"), ("total", "467,146.00")]:
        assert re.search(table_row(term, value), out), (term, out)


def test_evaluate_json_equals_the_hand_figures(
    cli: CliRunner, toy_model_path: Path, three_csv: Path
) -> None:
    code, out, err = cli("evaluate", "--data", "toy", "--model", toy_model_path,
                         "--groupings", three_csv, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["breakdown"] == pytest.approx(HAND["three"])
    assert list(payload["breakdown"]) == ["agencies", "desks", "purchases", "savings",
                                          "distance", "total"]
    assert payload["level"] == 3
    assert payload["feasible"] is True
    assert payload["open_sites"] == ["a2", "a4", "s1"]
    assert payload["violations"] == []


def test_evaluate_accepts_a_dataset_folder(
    cli: CliRunner,
    toy_folder: Path,
    toy_model_path: Path,
    write_groupings_csv: WriteCsv,
    alone_grouping: pd.DataFrame,
) -> None:
    path = write_groupings_csv(alone_grouping, "alone.csv")
    code, out, err = cli("evaluate", "--data", toy_folder, "--model", toy_model_path,
                         "--groupings", path, "--json")
    assert code == 0, err
    assert json.loads(out)["breakdown"] == pytest.approx(HAND["alone"])


def test_evaluate_default_model_for_the_shipped_name(cli: CliRunner, three_csv: Path) -> None:
    code, out, err = cli("evaluate", "--data", "toy", "--groupings", three_csv, "--json")
    assert code == 0, err
    assert json.loads(out)["breakdown"]["total"] == pytest.approx(467146.0)


def test_evaluate_folder_without_model_is_bad_input(
    cli: CliRunner, toy_folder: Path, three_csv: Path
) -> None:
    code, out, err = cli("evaluate", "--data", toy_folder, "--groupings", three_csv)
    assert code == 2
    assert out == ""
    assert err == (
        "error: 1 problem in the input:\n(--model) | a model file is needed for this dataset\n"
    )


def test_violating_grouping_exits_3_and_names_the_rule(
    cli: CliRunner, toy_model_path: Path, write_groupings_csv: WriteCsv,
    alone_grouping: pd.DataFrame,
) -> None:
    grouping = alone_grouping.copy()
    grouping.loc[grouping["body_id"] == "a4", "site_id"] = "a2"  # care 15 km > 12
    path = write_groupings_csv(grouping, "far.csv")
    code, out, err = cli("evaluate", "--data", "toy", "--model", toy_model_path,
                         "--groupings", path)
    assert code == 3
    assert "Traceback" not in err
    assert err.startswith("violated rule 2 (radius): agency beyond the category's radius_km")
    assert err.count("violated") == 1
    assert "Cost breakdown at level 5" in out
    # 5 agencies 25000; desks care 5 * 1000 + ict 4 * 2000 = 13000; a2 care 80000 + 40000
    # = 120000 saves 0.1 * 20000 = 2000, a2 ict 40000 + 10000 = 50000 saves 0: purchases
    # 458000; distance a4 care 0.04 * 15 * 100 = 60; total 25000 + 13000 + 458000 + 60
    assert re.search(table_row("total", "496,060.00"), out)
    code, out, err = cli("evaluate", "--data", "toy", "--model", toy_model_path,
                         "--groupings", path, "--json")
    assert code == 3
    payload = json.loads(out)
    assert payload["feasible"] is False
    assert payload["violations"] == [{
        "rule": "rule 2 (radius)",
        "message": "agency beyond the category's radius_km",
        "rows": ["row 8: 15.0 km"],
    }]


def test_grouping_file_with_blank_cell_is_bad_input(
    cli: CliRunner, toy_model_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "g.csv"
    path.write_text("body_id,category,site_id\na1,care,\n", encoding="utf-8")
    code, out, err = cli("evaluate", "--data", "toy", "--model", toy_model_path,
                         "--groupings", path)
    assert code == 2
    assert out == ""
    assert err == (
        "error: 1 problem in the input:\n(g.csv, row 2, column 'site_id') | blank site_id\n"
    )


def test_missing_grouping_file_is_bad_input(
    cli: CliRunner, toy_model_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "none.csv"
    code, out, err = cli("evaluate", "--data", "toy", "--model", toy_model_path,
                         "--groupings", path)
    assert code == 2
    assert out == ""
    assert err == f"error: 1 problem in the input:\n(none.csv) | file not found: {path}\n"


# ------------------------------------------------------------- broken input


BROKEN = [
    ("negative-spend", "spend.csv", "a1,ict,30000", "a1,ict,-5",
     "(spend.csv, row 3, column 'spend') | must be in [0, 1e+13], got '-5'"),
    ("duplicate-body", "bodies.csv", "a2,Brackwell", "a1,Brackwell",
     "(bodies.csv, row 3, column 'body_id') | duplicate id 'a1'\n"
     "(spend.csv, row 4, column 'body_id') | unknown body 'a2'\n"
     "(spend.csv, row 5, column 'body_id') | unknown body 'a2'"),
    ("unknown-edge-target", "edges.csv", "a1,s1,40", "a1,zz,40",
     "(edges.csv, row 5, column 'target') | unknown body or site id 'zz'"),
    ("category-not-in-model", "spend.csv", "s2,care,30000", "s2,food,30000",
     "(spend.csv, row 12, column 'category') | unknown category (not in the model) 'food'"),
    ("disconnected", "edges.csv", "a1,s1,40\n", "",
     "(edges.csv) | the network is not connected: 2 components\n"
     "(edges.csv) | component 1: a1, a2, a3, a4\n"
     "(edges.csv) | component 2: s1, s2"),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "message"), [pytest.param(*case[1:], id=case[0]) for case in BROKEN]
)
def test_broken_dataset_exits_2_with_a_message_and_no_traceback(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path, three_csv: Path,
    file: str, old: str, new: str, message: str,
) -> None:
    path = toy_folder / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    code, out, err = cli("evaluate", "--data", toy_folder, "--model", toy_model_path,
                         "--groupings", three_csv)
    assert code == 2
    assert "Traceback" not in err
    count = message.count("\n") + 1
    head = f"{count} problem{'s' if count != 1 else ''} in the input:"
    assert err == f"error: {head}\n{message}\n"
    assert out == ""


def test_broken_model_exits_2(cli: CliRunner, tmp_path: Path, toy_model_path: Path,
                              three_csv: Path) -> None:
    model = tmp_path / "typo.toml"
    model.write_text(
        toy_model_path.read_text(encoding="utf-8").replace("desk_cost = 1000", "desk_cots = 1000"),
        encoding="utf-8",
    )
    code, out, err = cli("evaluate", "--data", "toy", "--model", model, "--groupings", three_csv)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err == (
        "error: 1 problem in the input:\n(typo.toml, column 'categories.care.desk_cots') | "
        "unknown key; expected ['bands', 'description', 'desk_cost', 'distance_cost', "
        "'radius_km']\n"
    )


def test_debug_shows_the_traceback(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path, three_csv: Path
) -> None:
    (toy_folder / "spend.csv").unlink()
    code, out, err = cli("--debug", "evaluate", "--data", toy_folder, "--model", toy_model_path,
                         "--groupings", three_csv)
    assert code == 1
    assert out == ""
    assert "Traceback (most recent call last)" in err
    assert "optimizer.errors.DataValidationError: 1 problem in the input:" in err
    assert f"(spend.csv) | file not found: {toy_folder / 'spend.csv'}" in err


# -------------------------------------------------------------------------- help


@pytest.mark.parametrize(
    "command",
    [["evaluate"], ["datasets", "list"], ["datasets", "show"], ["datasets", "export"]],
    ids=" ".join,
)
def test_command_help_has_an_example(cli: CliRunner, command: list[str]) -> None:
    code, out, err = cli(*command, "--help")
    assert code == 0, err
    assert "Example: consolidate " + " ".join(command) in out


@pytest.mark.parametrize(
    ("command", "subcommands"),
    [([], ["evaluate", "datasets"]), (["datasets"], ["list", "show", "export"])],
    ids=["consolidate", "datasets"],
)
def test_group_help_lists_its_commands(
    cli: CliRunner, command: list[str], subcommands: list[str]
) -> None:
    code, out, err = cli(*command, "--help")
    assert code == 0, err
    for sub in subcommands:
        assert re.search(rf"│ {sub}\s", out), sub


@pytest.mark.parametrize("command", [[], ["datasets"]], ids=["consolidate", "datasets"])
def test_group_help_has_an_example(cli: CliRunner, command: list[str]) -> None:
    code, out, err = cli(*command, "--help")
    assert (code, err) == (0, "")
    assert "Example" in out


# ---------------------------------------------------------------------- datasets


def test_datasets_list_shows_toy(cli: CliRunner) -> None:
    code, out, err = cli("datasets", "list")
    assert code == 0, err
    assert re.search(table_row("toy", "toy", "Six made-up bodies in two nations"), out)
    assert re.search(table_row("uk-councils", "uk-default"), out)


def test_datasets_show_toy_totals(cli: CliRunner) -> None:
    code, out, err = cli("datasets", "show", "toy")
    assert code == 0, err
    assert "toy: 6 bodies, 6 candidate sites, 2 categories" in out
    # Northland a1..a4: 90000 + 120000 + 70000 + 50000 = 330000; Southland 100000 + 30000
    assert re.search(table_row("Northland", "4", "0.3"), out)
    assert re.search(table_row("Southland", "2", "0.1"), out)
    # care 330000 over 6 bodies, ict 130000 over 5 (s2 buys no ict)
    assert re.search(table_row("care", "6", "0.3"), out)
    assert re.search(table_row("ict", "5", "0.1"), out)


def test_datasets_show_a_folder(cli: CliRunner, toy_folder: Path, toy_model_path: Path) -> None:
    code, out, err = cli("datasets", "show", toy_folder, "--model", toy_model_path)
    assert code == 0, err
    assert "toy-copy: 6 bodies, 6 candidate sites, 2 categories" in out


def test_datasets_export_toy(
    cli: CliRunner,
    tmp_path: Path,
    toy_model_path: Path,
    alone_grouping: pd.DataFrame,
    three_agency_grouping: pd.DataFrame,
) -> None:
    target = tmp_path / "exported" / "toy"
    code, out, err = cli("datasets", "export", "toy", target)
    assert code == 0, err
    assert f"wrote toy to {target}" in out
    assert sorted(p.name for p in target.iterdir()) == ["bodies.csv", "edges.csv", "spend.csv"]
    for name in ("bodies.csv", "spend.csv", "edges.csv"):
        assert (target / name).read_bytes() == data_path("datasets", "toy", name).read_bytes()
    inst = load_instance(target, load_model(toy_model_path))
    assert evaluate(inst, alone_grouping).total == pytest.approx(506000.0)
    three = evaluate(inst, three_agency_grouping)
    assert three.feasible
    assert three.breakdown == pytest.approx(HAND["three"])


def test_datasets_export_unknown_name(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = cli("datasets", "export", "nope", tmp_path / "x")
    assert code == 2
    assert out == ""
    assert err == (
        "error: 1 problem in the input:\n(datasets export) | unknown dataset 'nope'; "
        "see 'consolidate datasets list'\n"
    )
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------ known CLI defects


def test_violated_rows_are_printed(
    cli: CliRunner, toy_model_path: Path, write_groupings_csv: WriteCsv,
    alone_grouping: pd.DataFrame,
) -> None:
    grouping = alone_grouping.copy()
    grouping.loc[grouping["body_id"] == "a4", "site_id"] = "a2"
    path = write_groupings_csv(grouping, "far.csv")
    code, out, err = cli("evaluate", "--data", "toy", "--model", toy_model_path,
                         "--groupings", path)
    assert code == 3
    assert "Cost breakdown at level 5" in out
    assert "row 8: 15.0 km" in err


def test_error_lines_are_not_wrapped_when_piped(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path, three_csv: Path
) -> None:
    bodies = toy_folder / "bodies.csv"
    bodies.write_text(bodies.read_text(encoding="utf-8").replace(",nation,", ",region,", 1),
                      encoding="utf-8")
    code, out, err = cli("evaluate", "--data", toy_folder, "--model", toy_model_path,
                         "--groupings", three_csv, columns=None)
    assert (code, out) == (2, "")
    assert (
        "(bodies.csv, column 'nation') | missing column; "
        "found ['body_id', 'name', 'region', 'x_km', 'y_km']\n"
    ) in err


def test_shipped_names_work_from_a_folder_holding_a_dataset_called_toy(
    tmp_path: Path, toy_folder: Path
) -> None:
    toy_folder.rename(tmp_path / "toy")
    code, out, err = run_cli("datasets", "show", "toy", cwd=tmp_path)
    assert code == 0, err
    assert "toy: 6 bodies" in out
