"""Exports of a curve run: the per-row cost shares and the four file formats."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import THREE_AGENCIES, CliRunner

import optimizer
from optimizer.curve import CurveOptions, consolidation_curve
from optimizer.errors import DataValidationError
from optimizer.export import DETAIL_COLUMNS, agency_frame, detail_frame, export_level, lonlat
from optimizer.resources import data_path
from optimizer.run import open_run, run_inputs

TERMS = ["agencies", "desks", "purchases", "distance", "total"]


def test_rows_add_up_to_every_level_of_the_curve(toy_run: Path) -> None:
    run = open_run(toy_run)
    assert run.levels == [6, 5, 4, 3]
    for level in run.levels:
        rows = detail_frame(run.instance, run.groupings(level))
        assert list(rows.columns) == DETAIL_COLUMNS
        assert len(rows) == len(run.instance.spend)
        expected = run.row(level)
        for term in TERMS:
            assert rows[term].sum() == pytest.approx(expected[term], rel=1e-9), (level, term)
        assert rows["discounts"].sum() == pytest.approx(expected["discounts"], abs=1e-6)


def test_shares_follow_the_stated_rule(alone_grouping: pd.DataFrame) -> None:
    inst = optimizer.load("toy")
    grouping = alone_grouping.assign(site_id=alone_grouping["body_id"].map(THREE_AGENCIES))
    rows = detail_frame(inst, grouping).set_index(["body_id", "category"])
    # Agency a2 buys care for a1 (60k), a2 (80k), a3 (50k): V = 190k, saving 10% of the
    # 90k above 100k = 9,000; ict for a1 (30k), a2 (40k), a3 (20k): V = 90k. Its 280k of
    # spend carries its fixed cost of 5,000. Row (a1, care) at 10 km from a2:
    row = rows.loc[("a1", "care")]
    assert (row["site_id"], row["agency_name"], row["km"]) == ("a2", "Brackwell", 10.0)
    assert (row["volume"], row["band"], row["band_rate"]) == (190_000.0, 2, 0.1)
    assert row["agencies"] == pytest.approx(5000 * 60 / 280)
    assert row["desks"] == pytest.approx(1000 * 60 / 190)
    assert row["purchases"] == pytest.approx(60_000 - 9000 * 60 / 190)
    assert row["discounts"] == pytest.approx(9000 * 60 / 190)
    assert row["distance"] == pytest.approx(100 * 60_000 / 1e6 * 10)
    assert row["total"] == pytest.approx(row[["agencies", "desks", "purchases", "distance"]].sum())
    # ict at a2 stays in band 2 (above 50k): 20% of 40k.
    assert rows.loc[("a3", "ict"), "discounts"] == pytest.approx(8000 * 20 / 90)


def test_a_grouping_that_breaks_a_rule_is_refused(alone_grouping: pd.DataFrame) -> None:
    inst = optimizer.load("toy")
    far = alone_grouping.assign(site_id="a2")  # s1, s2 in Southland: rule 3
    with pytest.raises(DataValidationError, match="rule 3"):
        detail_frame(inst, far)


def test_agency_listing(toy_run: Path) -> None:
    run = open_run(toy_run)
    rows = detail_frame(run.instance, run.groupings(3))
    agencies = agency_frame(rows).set_index("site_id")
    assert sorted(agencies.index) == sorted(set(run.groupings(3)["site_id"]))
    assert agencies["members"].sum() == run.instance.spend["body_id"].nunique()
    assert agencies["spend"].sum() == pytest.approx(run.instance.spend["spend"].sum())
    assert agencies["total"].sum() == pytest.approx(run.row(3)["total"])
    assert agencies.loc["a2", "member_names"] == "Alderley; Brackwell; Cresting"


def test_csv_export_defaults_to_the_recommended_level(toy_run: Path, cli: CliRunner) -> None:
    out = toy_run / "export.csv"
    code, stdout, _ = cli("export", toy_run, "-o", out)
    assert code == 0
    assert "level 3" in stdout
    rows = pd.read_csv(out, dtype={"body_id": str})
    curve = pd.read_csv(toy_run / "curve.csv").set_index("level")
    for term in TERMS:
        assert rows[term].sum() == pytest.approx(curve.loc[3, term], rel=1e-9)


def test_xlsx_has_summary_category_and_agency_sheets(toy_run: Path, cli: CliRunner) -> None:
    out = toy_run / "level-4.xlsx"
    code, _, err = cli("export", toy_run, "--level", 4, "--format", "xlsx", "-o", out)
    assert code == 0, err
    book = openpyxl.load_workbook(out, read_only=True)
    assert book.sheetnames == ["summary", "care", "ict", "agencies"]
    sheet = list(book["summary"].iter_rows(values_only=True))
    values = {row[0]: row[1] for row in sheet if row[0]}
    breakdown = {
        row[0]: row[1:] for row in sheet[sheet.index(("term", "status_quo", "level", "change")) :]
    }
    curve = pd.read_csv(toy_run / "curve.csv").set_index("level")
    assert values["level (agencies)"] == 4
    assert values["total GBP/yr"] == pytest.approx(curve.loc[4, "total"])
    assert values["savings GBP/yr"] == pytest.approx(curve.loc[4, "savings"])
    for term in TERMS:
        quo, level, change = breakdown[term]
        assert (quo, level) == pytest.approx((curve.loc[6, term], curve.loc[4, term]))
        assert change == pytest.approx(level - quo)
    care = list(book["care"].iter_rows(values_only=True))
    assert care[0][:3] == ("body_id", "body_name", "nation")
    assert len(care) - 1 == 6  # every toy body buys care
    assert len(list(book["ict"].iter_rows(values_only=True))) - 1 == 5
    agencies = list(book["agencies"].iter_rows(values_only=True))
    assert len(agencies) - 1 == 4
    assert sum(row[agencies[0].index("total")] for row in agencies[1:]) == pytest.approx(
        curve.loc[4, "total"]
    )


def test_parquet_equals_csv(toy_run: Path) -> None:
    run = open_run(toy_run)
    export_level(run, 3, toy_run / "x.parquet")
    export_level(run, 3, toy_run / "x.csv")
    table = pq.read_table(toy_run / "x.parquet").to_pandas()
    pd.testing.assert_frame_equal(table, pd.read_csv(toy_run / "x.csv", keep_default_na=False))


def _latlon_toy(tmp_path: Path) -> Path:
    """The toy with lat,lon in place of x_km,y_km (about 0.1 degree apart)."""
    folder = tmp_path / "toy-latlon"
    shutil.copytree(data_path("datasets", "toy"), folder)
    bodies = pd.read_csv(folder / "bodies.csv")
    bodies["lat"] = 52.0 + bodies.pop("y_km") / 111.0
    bodies["lon"] = -1.0 + bodies.pop("x_km") / 70.0
    bodies.to_csv(folder / "bodies.csv", index=False)
    return folder


def test_geojson_carries_longitude_and_latitude(tmp_path: Path) -> None:
    folder = _latlon_toy(tmp_path)
    model = str(data_path("models", "toy.toml"))
    out = tmp_path / "run"
    inputs = run_inputs(str(folder), model)
    consolidation_curve(optimizer.load(folder, model), CurveOptions((6, 3)), out, inputs=inputs)
    target = tmp_path / "level.geojson"
    with pytest.raises(DataValidationError, match="gives lat,lon already"):
        export_level(open_run(out), 3, target, crs="EPSG:27700")
    export_level(open_run(out), 3, target)
    payload = json.loads(target.read_text(encoding="utf-8"))
    assert payload["type"] == "FeatureCollection"
    members = [f for f in payload["features"] if f["properties"]["role"] == "member"]
    agencies = [f for f in payload["features"] if f["properties"]["role"] == "agency"]
    assert len(members) == 11 and len(agencies) == 3
    bodies = pd.read_csv(folder / "bodies.csv").set_index("body_id")
    for feature in members + agencies:
        assert feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        where = feature["properties"].get("body_id", feature["properties"]["site_id"])
        assert (lon, lat) == pytest.approx(tuple(bodies.loc[where, ["lon", "lat"]]), abs=1e-6)
    total = sum(f["properties"]["total"] for f in members)
    curve = pd.read_csv(out / "curve.csv").set_index("level")
    assert total == pytest.approx(curve.loc[3, "total"], rel=1e-9)


def test_geojson_of_a_plain_grid_needs_its_crs(toy_run: Path) -> None:
    target = toy_run / "level.geojson"
    run = open_run(toy_run)
    with pytest.raises(DataValidationError, match="pass --crs with the grid's EPSG code"):
        export_level(run, 3, target)
    assert not target.exists()
    with pytest.raises(DataValidationError, match="not a projected grid"):
        export_level(run, 3, target, crs="EPSG:4326")
    with pytest.raises(DataValidationError, match="not a coordinate system"):
        export_level(run, 3, target, crs="EPSG:nonsense")
    export_level(run, 3, target, crs="EPSG:27700")
    assert len(json.loads(target.read_text(encoding="utf-8"))["features"]) == 11 + 3


def test_uk_councils_coordinates_are_british_national_grid() -> None:
    bodies, _ = lonlat(optimizer.load("uk-councils"))
    # The City of London, Belfast and Edinburgh, from their postcodes' mean grid reference.
    assert tuple(bodies.loc["E09000001"]) == pytest.approx((-0.09, 51.515), abs=0.01)
    assert tuple(bodies.loc["N09000003"]) == pytest.approx((-5.93, 54.59), abs=0.05)
    assert tuple(bodies.loc["S12000036"]) == pytest.approx((-3.22, 55.94), abs=0.05)


def test_a_level_without_a_grouping_exits_2(toy_run: Path, cli: CliRunner) -> None:
    code, _, err = cli("export", toy_run, "-o", toy_run / "bad.csv", "--level", 9)
    assert code == 2
    assert "level 9 has no grouping" in err and "levels: 6, 5, 4, 3" in err
    assert "Traceback" not in err
    run = open_run(toy_run)
    with pytest.raises(DataValidationError, match="level 2 has no grouping"):
        export_level(run, 2, toy_run / "bad.csv")  # infeasible
    with pytest.raises(DataValidationError, match="expected one of csv, xlsx, geojson, parquet"):
        export_level(run, 3, toy_run / "bad.docx")


def test_not_a_run_folder_exits_2(tmp_path: Path, cli: CliRunner) -> None:
    code, _, err = cli("export", tmp_path, "-o", tmp_path / "x.csv")
    assert code == 2
    assert "run.json" in err and "consolidate curve" in err


def test_changed_data_is_refused(tmp_path: Path, toy_folder: Path) -> None:
    model = str(data_path("models", "toy.toml"))
    out = tmp_path / "run"
    inputs = run_inputs(str(toy_folder), model)
    assert inputs == {"data": str(toy_folder.resolve()), "model": str(Path(model).resolve())}
    instance = optimizer.load(toy_folder, model)
    consolidation_curve(instance, CurveOptions((6, 4)), out, inputs=inputs)
    assert open_run(out).levels == [6, 4]
    spend = toy_folder / "spend.csv"
    spend.write_text(spend.read_text(encoding="utf-8").replace("60000", "61000"), encoding="utf-8")
    with pytest.raises(DataValidationError, match="differs from the one this run solved"):
        open_run(out)
    with pytest.raises(DataValidationError, match="differs from the one this run solved"):
        open_run(out, optimizer.load(toy_folder, model))
    assert open_run(out, instance).levels == [6, 4]


def test_edited_grouping_is_refused(toy_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(toy_run, copy)
    path = copy / "groupings" / "level-4.csv"
    grouping = pd.read_csv(path, dtype=str)
    grouping.loc[grouping["body_id"] == "s2", "site_id"] = "s1"  # level 4 keeps s2 open
    grouping.to_csv(path, index=False)
    run = open_run(copy)
    expected = run.row(4)["total"]
    assert not math.isclose(optimizer.evaluate(run.instance, grouping).total, expected)
    with pytest.raises(DataValidationError, match=r"curve\.csv says"):
        run.evaluation(4)
