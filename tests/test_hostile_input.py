"""Hostile input through the real ``consolidate`` command (issue 31, items 6 and 8 to 12).

Every case is refused with exit code 2 and one message naming the option or
file, no traceback and nothing written; or, for the exports and JSON files,
the written files are checked as other tools read them.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from conftest import CLI_CODE, TOY_SITES, CliRunner, run_cli

from optimizer import CurveOptions, SolverOptions
from optimizer.errors import DataValidationError
from optimizer.results import LOCK
from optimizer.sweep import load_sweep

FORMULA = '=HYPERLINK("http://x.example","y")'


def refused(result: tuple[int, str, str], *needles: str) -> str:
    """Assert exit 2 with one message holding every needle, and no traceback."""
    code, out, err = result
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def strict_json(path: Path) -> object:
    """Parse ``path`` as strict JSON: NaN, Infinity and -Infinity are errors."""

    def reject(token: str) -> object:
        raise ValueError(f"{path}: not JSON: {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


def curve(cli: CliRunner, out: Path, *extra: object, levels: str = "6,3") -> tuple[int, str, str]:
    return cli("curve", "--data", "toy", "--out", out, "--levels", levels,
               "--executor", "serial", *extra)


# ------------------------------------------------------------------ item 6: options

BAD_OPTIONS = [
    ("--threads", "100000"),
    ("--threads", "0"),
    ("--gap", "-1"),
    ("--gap", "nan"),
    ("--gap", "2"),
    ("--gap", "inf"),
    ("--time-limit", "-1"),
    ("--time-limit", "0"),
    ("--time-limit", "nan"),
    ("--time-limit", "inf"),
    ("--workers", "0"),
    ("--workers", "100000"),
]


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS)
def test_curve_refuses_a_bad_option_value_before_writing(
    cli: CliRunner, tmp_path: Path, option: str, value: str
) -> None:
    out = tmp_path / "run"
    extra = [option, value] if option == "--time-limit" else [option, value, "--time-limit", "2"]
    refused(curve(cli, out, *extra), f"({option}) |", value)
    assert not out.exists()


@pytest.mark.parametrize(("option", "value"),
                         [("--threads", "100000"), ("--gap", "nan"), ("--gap", "-1"),
                          ("--time-limit", "0"), ("--time-limit", "nan")])
def test_solve_refuses_a_bad_option_value(
    cli: CliRunner, tmp_path: Path, option: str, value: str
) -> None:
    out = tmp_path / "level-3"
    refused(cli("solve", "--data", "toy", "--level", "3", "--out", out, option, value),
            f"({option}) |")
    assert not out.exists()


def test_threads_up_to_the_cores_still_solve(cli: CliRunner) -> None:
    cores = os.cpu_count() or 1
    code, _, err = cli("solve", "--data", "toy", "--level", "3", "--threads", cores,
                       "--time-limit", "30")
    assert code == 0, err
    refused(cli("solve", "--data", "toy", "--level", "3", "--threads", cores + 1),
            "(--threads) |", f"from 1 to {cores}")


@pytest.mark.parametrize(
    ("keywords", "option"),
    [({"gap": 2.0}, "--gap"), ({"gap": math.nan}, "--gap"), ({"time_limit": 0.0}, "--time-limit"),
     ({"time_limit": -1.0}, "--time-limit"), ({"threads": 100000}, "--threads")],
)
def test_python_options_raise_a_value_error_naming_the_option(
    keywords: dict[str, float], option: str
) -> None:
    with pytest.raises(ValueError, match=f"\\({option}\\) \\|") as caught:
        SolverOptions(**keywords)  # type: ignore[arg-type]
    assert isinstance(caught.value, DataValidationError)
    with pytest.raises(DataValidationError):
        CurveOptions(levels=(3,), solver=SolverOptions(**keywords))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "key"),
    [("gap = -1", "sweep.gap"), ("gap = 2.0", "sweep.gap"), ("time_limit = 0", "sweep.time_limit"),
     ("threads = 100000", "sweep.threads"), ("threads = 0", "sweep.threads")],
)
def test_a_sweep_file_refuses_bad_solver_settings(
    cli: CliRunner, tmp_path: Path, line: str, key: str
) -> None:
    grid = tmp_path / "sweep.toml"
    grid.write_text(f'[sweep]\ndata = "toy"\n{line}\n[grid]\nrate_scale = [1.0]\n',
                    encoding="utf-8")
    with pytest.raises(DataValidationError, match=f"column '{key}'"):
        load_sweep(grid)
    refused(cli("sweep", "--grid", grid, "--out", tmp_path / "out", "--executor", "serial"),
            f"(sweep.toml, column '{key}') |")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ item 8: exit-2 messages


def test_header_only_spend_is_refused(cli: CliRunner, toy_folder: Path,
                                      toy_model_path: Path) -> None:
    (toy_folder / "spend.csv").write_text("body_id,category,spend\n", encoding="utf-8")
    refused(cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "3"),
            "(spend.csv) | has a header but no rows")


def test_header_only_bodies_is_refused(cli: CliRunner, toy_folder: Path,
                                       toy_model_path: Path) -> None:
    (toy_folder / "bodies.csv").write_text("body_id,name,nation,x_km,y_km\n", encoding="utf-8")
    refused(cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "3"),
            "(bodies.csv) | has a header but no rows")


@pytest.mark.parametrize("value", ["1e20", "1e14", "inf"])
def test_spend_above_the_maximum_is_refused(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path, value: str
) -> None:
    spend = toy_folder / "spend.csv"
    spend.write_text(spend.read_text().replace("a1,care,60000", f"a1,care,{value}"))
    refused(cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "3"),
            "(spend.csv, row 2, column 'spend') | must be in [0, 1e+13]")


def test_spend_at_the_maximum_solves(cli: CliRunner, toy_folder: Path,
                                     toy_model_path: Path) -> None:
    spend = toy_folder / "spend.csv"
    spend.write_text(spend.read_text().replace("a1,care,60000", "a1,care,1e13"))
    code, out, err = cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "3")
    assert code == 0, err
    assert "optimal" in out


@pytest.mark.parametrize(
    ("line", "key"),
    [("agency_fixed_cost = 1e20", "scenario.agency_fixed_cost"),
     ("desk_cost = 1e20", "categories.care.desk_cost"),
     ("distance_cost = 1e17", "categories.care.distance_cost")],
)
def test_model_money_above_the_maximum_is_refused(
    cli: CliRunner, tmp_path: Path, toy_model_path: Path, line: str, key: str
) -> None:
    text = toy_model_path.read_text(encoding="utf-8")
    name = line.split(" = ")[0]
    lines = text.splitlines()
    first = next(i for i, row in enumerate(lines) if row.startswith(f"{name} = "))
    lines[first] = line
    model = tmp_path / "model.toml"
    model.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused(cli("solve", "--data", "toy", "--model", model, "--level", "3"),
            f"(model.toml, column '{key}') | must be <=")


@pytest.mark.parametrize("levels", ["", ",", " , ,"])
def test_no_levels_is_refused_and_nothing_written(
    cli: CliRunner, tmp_path: Path, levels: str
) -> None:
    out = tmp_path / "run"
    refused(curve(cli, out, levels=levels), "(--levels) | no levels given")
    assert not out.exists()


def test_a_huge_level_range_is_refused_at_once(cli: CliRunner, tmp_path: Path) -> None:
    """The range was expanded before its ends were checked: 1..1e14 filled memory."""
    out = tmp_path / "run"
    refused(curve(cli, out, levels="1..99999999999999"),
            "(--levels) | levels must be between 1 and 6, got [99999999999999]")
    assert not out.exists()


def test_min_level_above_max_level_is_refused_and_nothing_written(
    cli: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    refused(cli("curve", "--data", "toy", "--out", out, "--min-level", "5", "--max-level", "3"),
            "(--min-level) | 5 is above --max-level 3")
    assert not out.exists()
    refused(cli("curve", "--data", "toy", "--out", out, "--levels", "6,5",
                "--max-level", "4"), "(--levels) | none of '6,5'")
    assert not out.exists()


@pytest.mark.parametrize(("option", "value"), [("--min-level", "100"), ("--max-level", "0")])
def test_a_level_bound_that_leaves_no_level_names_the_range(
    cli: CliRunner, tmp_path: Path, option: str, value: str
) -> None:
    out = tmp_path / "run"
    refused(cli("curve", "--data", "toy", "--out", out, option, value),
            f"({option}) | {value} leaves no level: this data's levels run from 1 to 6")
    assert not out.exists()


def test_out_that_is_a_file_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n", encoding="utf-8")
    refused(curve(cli, afile), "(--out) |", "is a file, not a folder")
    refused(cli("solve", "--data", "toy", "--level", "3", "--out", afile), "(--out) |")
    assert afile.read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize("parent", ["afile", "/proc"])
def test_out_that_cannot_be_written_is_refused(
    cli: CliRunner, tmp_path: Path, parent: str
) -> None:
    (tmp_path / "afile").write_text("mine\n", encoding="utf-8")
    base = tmp_path / parent if parent == "afile" else Path(parent)
    refused(curve(cli, base / "run"), "(--out) | cannot write in", str(base))
    refused(cli("solve", "--data", "toy", "--level", "3", "--out", base / "level"),
            "(--out) | cannot write in", str(base))
    refused(cli("solve", "--data", "toy", "--level", "3", "--write-lp", base / "m.lp"),
            "(--write-lp) |", str(base))
    refused(cli("datasets", "export", "toy", base / "copy"), "(FOLDER) | cannot write in")
    refused(cli("datasets", "synth", "--bodies", "10", base / "synth"),
            "(FOLDER) | cannot write in")


@pytest.mark.parametrize(("command", "target"),
                         [("export", "afile/x.out"), ("plot", "/proc/x.out"), ("report", "."),
                          ("export", "/proc/x.out"), ("report", "afile/x.out")])
def test_unwritable_output_file_is_refused(
    cli: CliRunner, toy_run: Path, tmp_path: Path, command: str, target: str
) -> None:
    (tmp_path / "afile").write_text("mine\n", encoding="utf-8")
    suffix = {"export": ".csv", "plot": ".png", "report": ".html"}[command]
    path = Path(target) if target.startswith("/") else tmp_path / target
    path = path if target == "." else path.with_suffix(suffix)
    refused(cli(command, toy_run, "-o", path), "(-o) |")


def test_synth_refuses_a_negative_seed_before_writing(cli: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "synth"
    refused(cli("datasets", "synth", "--bodies", "10", "--seed", "-1", folder),
            "(--seed) | must be a whole number >= 0, got -1")
    assert not folder.exists()


# ------------------------------------------------ item 9: nothing a user has is overwritten


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("resume", [False, True])
def test_curve_refuses_a_folder_of_other_files(
    cli: CliRunner, tmp_path: Path, resume: bool
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "curve.csv").write_text("my own table\n", encoding="utf-8")
    (mine / "notes.txt").write_text("notes\n", encoding="utf-8")
    before = _snapshot(mine)
    extra = ["--resume"] if resume else []
    refused(curve(cli, mine, *extra), f"({mine}) | holds other files (curve.csv, notes.txt)")
    assert _snapshot(mine) == before
    assert sorted(p.name for p in mine.iterdir()) == ["curve.csv", "notes.txt"]


def test_solve_refuses_a_curve_run_folder_and_other_files(
    cli: CliRunner, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    code, _, err = curve(cli, run)
    assert code == 0, err
    before = _snapshot(run)
    refused(cli("solve", "--data", "toy", "--level", "3", "--out", run),
            f"({run}) | holds a curve run, not a solve's output")
    assert _snapshot(run) == before
    code, _, err = cli("export", run, "-o", tmp_path / "level.csv")
    assert code == 0, err  # the run folder still works
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_text("{}", encoding="utf-8")
    (mine / "budget.xlsx").write_text("x", encoding="utf-8")
    refused(cli("solve", "--data", "toy", "--level", "3", "--out", mine), "holds other files")


def test_curve_and_sweep_refuse_a_solve_folder(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "level-3"
    code, _, err = cli("solve", "--data", "toy", "--level", "3", "--out", out)
    assert code == 0, err
    before = _snapshot(out)
    refused(curve(cli, out), f"({out}) | holds a solve's output, not a curve run")
    grid = tmp_path / "sweep.toml"
    grid.write_text('[sweep]\ndata = "toy"\nlevels = "6,3"\n[grid]\nrate_scale = [1.0]\n',
                    encoding="utf-8")
    refused(cli("sweep", "--grid", grid, "--out", out, "--executor", "serial"),
            f"({out}) | holds a solve's output, not a sweep")
    assert _snapshot(out) == before


def test_solve_may_write_again_into_its_own_folder(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "level"
    for level in ("3", "4"):
        code, _, err = cli("solve", "--data", "toy", "--level", level, "--out", out)
        assert code == 0, err
        assert json.loads((out / "summary.json").read_text())["level"] == int(level)
    assert sorted(p.name for p in out.iterdir()) == ["groupings.csv", "summary.json"]


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A folder whose lock another process (this one) holds."""
    folder = tmp_path / "busy"
    folder.mkdir()
    with open(folder / LOCK, "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield folder


def test_a_locked_run_folder_is_refused(cli: CliRunner, held: Path) -> None:
    refused(curve(cli, held), f"({held}) | another run is writing to this folder")
    refused(cli("solve", "--data", "toy", "--level", "3", "--out", held),
            "another run is writing to this folder")
    assert sorted(p.name for p in held.iterdir()) == [LOCK]


def test_a_stale_lock_file_blocks_nothing(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text("", encoding="utf-8")  # left by a run that crashed: nobody holds it
    code, _, err = curve(cli, out)
    assert code == 0, err
    assert not (out / LOCK).exists()
    code, _, err = curve(cli, out, "--resume")
    assert code == 0, err


def test_the_lock_is_held_while_a_curve_runs(tmp_path: Path) -> None:
    """A second curve into the folder of a curve in progress is refused at once.

    The first run is paused (SIGSTOP) once it has written run.json, so the
    second certainly starts while the first holds the folder.
    """
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-c", CLI_CODE, "curve", "--data", "toy", "--out", str(out),
         "--levels", "6,5,4,3", "--executor", "serial"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "run.json").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        first.send_signal(signal.SIGSTOP)
        for extra in ([], ["--resume"]):
            second = run_cli("curve", "--data", "toy", "--out", out, "--levels", "6,3",
                             "--executor", "serial", *extra, cwd=tmp_path)
            refused(second, f"({out}) | another run is writing to this folder")
    finally:
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=120) == 0
    assert not (out / LOCK).exists()
    assert pd.read_csv(out / "curve.csv")["level"].tolist() == [6, 5, 4, 3]


# ------------------------------------------------------------ item 10: formula injection


@pytest.fixture
def formula_run(tmp_path: Path) -> Path:
    """A curve run of the toy whose body a1 and site s2 have names a spreadsheet would run."""
    data = tmp_path / "evil"
    shutil.copytree(Path(__file__).parents[1] / "datasets" / "toy", data)
    bodies = pd.read_csv(data / "bodies.csv", dtype=str)
    bodies.loc[bodies["body_id"] == "a1", "name"] = FORMULA
    bodies.loc[bodies["body_id"] == "a2", "name"] = "@SUM(1+1)"
    bodies.loc[bodies["body_id"] == "s2", "name"] = "-2+3"
    bodies.to_csv(data / "bodies.csv", index=False)
    out = tmp_path / "run"
    code, _, err = run_cli("curve", "--data", data, "--model", "toy", "--out", out,
                           "--levels", "6,3", "--executor", "serial", cwd=tmp_path)
    assert code == 0, err
    return out


def test_xlsx_export_holds_no_formula(formula_run: Path, tmp_path: Path) -> None:
    book_path = tmp_path / "level.xlsx"
    for level in ("6", "3"):
        code, _, err = run_cli("export", formula_run, "--level", level, "-o", book_path,
                               cwd=tmp_path)
        assert code == 0, err
        book = openpyxl.load_workbook(book_path)
        seen = {sheet: 0 for sheet in book.sheetnames}
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                    if isinstance(cell.value, str) and FORMULA in cell.value:
                        seen[sheet.title] += 1
                        assert cell.data_type == "s"
        assert all(seen[name] for name in ("care", "ict", "agencies")), seen
        values = {c.value for s in book.worksheets for r in s.iter_rows() for c in r}
        assert FORMULA in values and "@SUM(1+1)" in values  # the text itself, unchanged


def test_csv_export_neutralises_formulas_in_text_only(formula_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "level.csv"
    code, _, err = run_cli("export", formula_run, "--level", "6", "-o", path, cwd=tmp_path)
    assert code == 0, err
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    names = dict(zip(rows["body_id"], rows["body_name"], strict=False))
    assert names["a1"] == "'" + FORMULA
    assert names["a2"] == "'@SUM(1+1)"
    assert names["s2"] == "'-2+3"
    assert names["a3"] == "Cresting"
    for column in ("km", "spend", "total", "distance"):
        assert not rows[column].str.startswith("'").any()
        pd.to_numeric(rows[column])  # numbers stay numbers


# ------------------------------------------------------------------ item 11: strict JSON


def test_every_json_file_of_a_run_is_strict_and_resumes(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = curve(cli, out, levels="6,3,2")  # 2 is infeasible: its row has no numbers
    assert code == 0, err
    files = sorted(out.rglob("*.json"))
    assert out / "levels" / "level-2.json" in files
    for path in files:
        strict_json(path)
    row = strict_json(out / "levels" / "level-2.json")
    assert isinstance(row, dict)
    assert row["status"] == "infeasible" and row["total"] is None and row["gap"] is None
    code, _, err = curve(cli, out, "--resume", levels="6,3,2")
    assert code == 0, err
    curve_csv = pd.read_csv(out / "curve.csv")
    assert curve_csv.set_index("level").loc[2, "status"] == "infeasible"
    assert math.isnan(curve_csv.set_index("level").loc[2, "total"])
    code, _, err = cli("report", out, "-o", tmp_path / "report.html")
    assert code == 0, err


def test_strict_json_writer_writes_null() -> None:
    from optimizer.results import strict

    payload = {"gap": math.inf, "bound": -math.inf, "x": [math.nan, 1.0]}
    assert json.dumps(strict(payload), allow_nan=False) == (
        '{"gap": null, "bound": null, "x": [null, 1.0]}'
    )


# ------------------------------------------------------------------ item 12: the smaller list


def test_nations_that_slug_alike_get_columns_of_their_own(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path, tmp_path: Path
) -> None:
    bodies = pd.read_csv(toy_folder / "bodies.csv", dtype=str)
    bodies["nation"] = bodies["nation"].map({"Northland": "North-Land", "Southland": "North Land"})
    bodies.to_csv(toy_folder / "bodies.csv", index=False)
    model = tmp_path / "model.toml"
    text = toy_model_path.read_text(encoding="utf-8")
    model.write_text(text.replace("same_nation = true", "same_nation = false"), encoding="utf-8")
    out = tmp_path / "run"
    code, _, err = cli("curve", "--data", toy_folder, "--model", model, "--out", out,
                       "--levels", "6,4,3", "--executor", "serial")
    assert code == 0, err
    frame = pd.read_csv(out / "curve.csv").set_index("level")
    assert (frame["status"] == "optimal").all()
    assert frame.loc[6, "agencies_in_north_land"] == 2  # "North Land" (sorts first): s1, s2
    assert frame.loc[6, "agencies_in_north_land_2"] == 4  # "North-Land": a1 to a4
    both = frame["agencies_in_north_land"] + frame["agencies_in_north_land_2"]
    assert both.tolist() == [6, 4, 3]


@pytest.mark.parametrize("file", ["sites.csv", "edges.csv"])
def test_a_dangling_link_is_an_error_naming_the_file(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path, file: str
) -> None:
    (toy_folder / file).unlink(missing_ok=True)
    (toy_folder / file).symlink_to(toy_folder / "gone" / file)
    refused(cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "3"),
            f"({file}) | is a link to a missing file")


@pytest.mark.parametrize("text", ["", "# nothing\n", "[sweep]\nlevels = '6,3'\n"])
def test_an_empty_sweep_file_is_refused(cli: CliRunner, tmp_path: Path, text: str) -> None:
    grid = tmp_path / "sweep.toml"
    grid.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    refused(cli("sweep", "--grid", grid, "--out", out, "--executor", "serial"),
            "(sweep.toml) | names no data and varies nothing")
    assert not out.exists()


def test_a_capacity_zero_host_is_named_as_the_cause(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path
) -> None:
    (toy_folder / "sites.csv").write_text(
        "site_id,name,nation,x_km,y_km,capacity,body_id\n"
        "a1,Alderley,Northland,0,0,0,a1\n"
        "a2,Brackwell,Northland,10,0,,a2\n"
        "a3,Cresting,Northland,20,0,,a3\n"
        "a4,Dunmere,Northland,10,15,,a4\n"
        "s1,Eastwick,Southland,0,-40,,s1\n"
        "s2,Fallow,Southland,12,-40,,s2\n",
        encoding="utf-8",
    )
    code, _, err = cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "6")
    assert code == 3, err
    assert "sites a1 cannot open, as their capacity is below their host body's spend" in err
    assert "radii" not in err
    code, _, err = cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "5")
    assert code == 0, err


def test_capacities_that_rule_out_every_level_are_named_as_the_cause(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path, tmp_path: Path
) -> None:
    """conftest's sites: a3 is closed, so its care (50,000, radius 12 km) can go only to a2,
    whose host spends 120,000 there already: a2's capacity of 150,000 rules out every level."""
    (toy_folder / "sites.csv").write_text(TOY_SITES, encoding="utf-8")
    capacities = ("the sites' capacities (GBP 150,000 in all at the 1 capacity-limited site"
                  " that may open besides 4 unlimited, against GBP 460,000 of spend")
    code, _, err = cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "4")
    assert code == 3, err
    assert "no grouping at level 4 meets every rule: 4 agencies can reach every body" in err
    assert capacities in err and "too few agencies" not in err
    out = tmp_path / "run"
    code, _, err = cli("curve", "--data", toy_folder, "--model", toy_model_path,
                       "--levels", "5,4", "--out", out, "--executor", "serial")
    assert code == 0, err  # the run is written, its levels infeasible with their reasons
    reasons = pd.read_csv(out / "curve.csv")["reason"]
    for level, reason in zip((5, 4), reasons, strict=True):
        assert reason.startswith(f"no grouping at level {level} meets every rule: 3 agencies")
        assert capacities in reason and "too few agencies" not in reason


def test_a_missing_data_folder_names_data(cli: CliRunner, tmp_path: Path) -> None:
    err = refused(cli("solve", "--data", tmp_path / "nowhere", "--level", "3"), "(--data) |")
    assert "--model" not in err


def test_a_repeated_edge_is_refused_naming_both_rows(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path
) -> None:
    edges = toy_folder / "edges.csv"
    edges.write_text(edges.read_text() + "a2,a1,7\n", encoding="utf-8")  # row 7, again a1-a2
    refused(cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", "3"),
            "(edges.csv, row 7, column 'target') | edge a1-a2 is given again (first in row 2)")


# ------------------------------------------------ fuzz round: a site open for no one

WESTGATE_SITES = (
    "site_id,name,nation,x_km,y_km,fixed_cost,capacity,status,body_id\n"
    + "".join(f"{b},{b},{n},0,0,,,candidate,{b}\n"
              for b, n in [("a1", "Northland"), ("a2", "Northland"), ("a3", "Northland"),
                           ("a4", "Northland"), ("s1", "Southland"), ("s2", "Southland")])
    + "w1,Westgate,Westland,60,0,,,open,\n"
)


@pytest.fixture
def westgate_run(cli: CliRunner, toy_folder: Path, toy_model_path: Path, tmp_path: Path) -> Path:
    """A toy curve (levels 6, 5, 4) with a status-open site ``w1`` that no body may use."""
    (toy_folder / "sites.csv").write_text(WESTGATE_SITES, encoding="utf-8")
    edges = toy_folder / "edges.csv"
    edges.write_text(edges.read_text() + "a3,w1,40\n", encoding="utf-8")
    out = tmp_path / "run"
    code, _, err = cli("curve", "--data", toy_folder, "--model", toy_model_path,
                       "--levels", "6,5,4", "--out", out, "--executor", "serial")
    assert code == 0, err
    return out


def test_a_status_open_site_nobody_uses_is_open_today_and_at_every_level(
    cli: CliRunner, westgate_run: Path, toy_folder: Path, toy_model_path: Path, tmp_path: Path
) -> None:
    summary = strict_json(westgate_run / "summary.json")
    assert isinstance(summary, dict)
    quo = 506000 + 5000  # the toy's status quo and w1's fixed cost: w1 is open today
    assert summary["status_quo_total"] == quo
    frame = pd.read_csv(westgate_run / "curve.csv").set_index("level")
    assert (frame["savings"] == quo - frame["total"]).all()
    nations = frame[["agencies_in_northland", "agencies_in_southland", "agencies_in_westland"]]
    assert (nations.sum(axis=1) == frame.index).all()
    assert (nations["agencies_in_westland"] == 1).all()
    for level in (6, 5, 4):
        sheet = tmp_path / f"x{level}.xlsx"
        code, _, err = cli("export", westgate_run, "--level", level, "-o", sheet)
        assert code == 0, err
        rows = list(openpyxl.load_workbook(sheet)["summary"].values)
        today = next(r for r in rows if r[0] == "total" and len(r) > 2 and r[1] is not None)
        assert today[1] == quo, rows
    for command, out in (("report", "r.html"), ("plot", "p.png")):
        code, _, err = cli(command, westgate_run, "-o", tmp_path / out)
        assert code == 0, err
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Maps: today (7\nagencies)" in html  # w1 among the agencies of every map
    assert "agencies in all</strong></td><td><strong>4<" in html
    code, _, err = cli("plot", westgate_run, "--kind", "map", "--level", 4,
                       "-o", tmp_path / "m.svg")
    assert code == 0, err
    assert "4 agencies, 6 bodies" in (tmp_path / "m.svg").read_text(encoding="utf-8")
    code, out, err = cli("evaluate", "--data", toy_folder, "--model", toy_model_path,
                         "--groupings", westgate_run / "groupings" / "level-4.csv", "--json")
    assert code == 0, (out, err)
    assert json.loads(out)["breakdown"]["total"] == frame.loc[4, "total"]


def test_a_grouping_that_breaks_a_rule_is_named_so(
    cli: CliRunner, westgate_run: Path, tmp_path: Path
) -> None:
    path = westgate_run / "groupings" / "level-4.csv"
    path.write_text(path.read_text() + "s2,care,s1\n", encoding="utf-8")  # the row again
    err = refused(cli("export", westgate_run, "--level", 4, "-o", tmp_path / "x.csv"),
                  "breaks the rules", "more than one row for a body and category")
    assert "curve.csv says" not in err


def test_a_resumed_run_keeps_the_idle_agencies_of_its_finished_levels(
    cli: CliRunner, toy_folder: Path, toy_model_path: Path, tmp_path: Path
) -> None:
    """s2 has no spend: level 6 opens its site for no one (idle_sites). Read back without
    it on --resume, level 6's grouping had 5 agencies and level 4 failed (bound above total)."""
    spend = toy_folder / "spend.csv"
    spend.write_text("".join(line for line in spend.read_text().splitlines(keepends=True)
                             if not line.startswith("s2,")), encoding="utf-8")
    out = tmp_path / "run"

    def run(levels: str, *extra: str) -> pd.DataFrame:
        code, _, err = cli("curve", "--data", toy_folder, "--model", toy_model_path,
                           "--levels", levels, "--out", out, "--executor", "serial", *extra)
        assert code == 0 and "internal error" not in err, err
        return pd.read_csv(out / "curve.csv").set_index("level")

    run("6")
    frame = run("6,5,4", "--resume")
    assert frame["status"].eq("optimal").all()
    assert frame["total"].to_dict() == {6: 475000.0, 5: 459060.0, 4: 442110.0}


@pytest.mark.parametrize("idle", ["5", "null", "[1]"])
def test_idle_sites_that_are_no_list_of_ids_are_refused(
    cli: CliRunner, westgate_run: Path, tmp_path: Path, idle: str
) -> None:
    path = westgate_run / "levels" / "level-4.json"
    row = json.loads(path.read_text(encoding="utf-8"))
    row["idle_sites"] = json.loads(idle)
    path.write_text(json.dumps(row), encoding="utf-8")
    refused(cli("export", westgate_run, "--level", 4, "-o", tmp_path / "x.csv"),
            f"level-4.json) | idle_sites must be a list of site ids, got {idle}")
