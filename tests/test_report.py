"""The HTML report: self-contained, complete, and true to the run's files."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from conftest import CliRunner

from optimizer.errors import DataValidationError
from optimizer.report import (
    CONTEXT_FILE,
    build_report,
    default_levels,
    money,
    parse_levels_option,
)
from optimizer.run import open_run

EXTERNAL = re.compile(r"^\s*(https?:|//|ftp:)", re.IGNORECASE)


class Page(HTMLParser):
    """Every tag with its attributes, the text of each table, and the style text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[list[list[str]]] = []
        self.style = ""
        self.text = ""
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._in:
            del self._in[len(self._in) - 1 - self._in[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        self.text += data
        if "style" in self._in:
            self.style += data
        elif self._in and self._in[-1] in ("td", "th", "strong", "em") and self.tables:
            self.tables[-1][-1][-1] += data


def _parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


@pytest.fixture(scope="module")
def page(toy_run: Path) -> Page:
    return _parse(build_report(open_run(toy_run)))


def test_report_makes_no_external_requests(page: Page) -> None:
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object")]
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "data", "poster", "action"):
            value = attrs.get(name)
            assert value is None or not EXTERNAL.match(value), (tag, name, value[:60])
    assert "@import" not in page.style
    assert not re.search(r"url\(\s*['\"]?\s*(https?:|//)", page.style)
    assert "@media print" in page.style and "@page" in page.style


def test_images_are_inline_svg(page: Page) -> None:
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 2 + 3  # curve, breakdown; maps of today, 4 and 3 agencies
    for src in images:
        assert src is not None and src.startswith("data:image/svg+xml;base64,")
        svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
        assert "<svg" in svg and not re.search(r"(href|src)=\"(https?:|//)", svg)
        assert not re.search(r"xlink:href=\"(https?:|//)", svg)


def test_savings_table_matches_the_curve(toy_run: Path, page: Page) -> None:
    curve = pd.read_csv(toy_run / "curve.csv").set_index("level")
    table = next(t for t in page.tables if t[0][:3] == ["agencies", "total / yr", "saving / yr"])
    rows = {int(row[0].split()[0]): row for row in table[1:]}
    assert sorted(rows) == [2, 3, 4, 5, 6]
    for level in (6, 5, 4, 3):
        assert rows[level][1] == money(curve.loc[level, "total"])
        assert rows[level][2] == money(curve.loc[level, "savings"])
        assert rows[level][3] == f"{curve.loc[level, 'savings_pct']:.2f}%"
    assert rows[2][-1] == "infeasible"
    assert "\u2713" in rows[3][0]  # the recommended level is within 1% of itself


def test_headline_breakdown_and_assumptions(toy_run: Path, page: Page) -> None:
    summary = json.loads((toy_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["recommended_level"] == 3
    saving = money(summary["recommended_savings"])
    assert f"through 3 agencies would save {saving} a year" in " ".join(page.text.split())
    breakdown = next(t for t in page.tables if t[0][0] == "GBP per year")
    assert breakdown[0] == ["GBP per year", "today", "4 agencies", "3 agencies"]
    curve = pd.read_csv(toy_run / "curve.csv").set_index("level")
    totals = next(row for row in breakdown if row[0] == "total")
    assert totals[1:] == [money(curve.loc[k, "total"]) for k in (6, 4, 3)]
    categories = next(t for t in page.tables if t[0][0] == "category" and len(t[0]) == 6)
    assert [row[0] for row in categories[1:]] == ["care", "ict"]
    assert categories[1][3] == "12 km" and categories[1][4] == "0-100k: 0%; 100k+: 10%"
    assert "The toy dataset is made up" in page.text


def test_public_estimates_carry_their_sources(page: Page) -> None:
    with CONTEXT_FILE.open("rb") as handle:
        estimates = tomllib.load(handle)["estimate"]
    table = next(t for t in page.tables if t[0][0] == "public figure")
    assert len(table) - 1 == len(estimates)
    for row, estimate in zip(table[1:], estimates, strict=True):
        assert row[:3] == [estimate["figure"], estimate["value"], estimate["source"]]
    hansel = next(row for row in table if row[0].startswith("Centralised purchasing"))
    assert hansel[3].endswith("% of today's total cost")


def test_default_levels(toy_run: Path) -> None:
    run = open_run(toy_run)
    # Recommended 3; nothing else within 1%; 3 is the most consolidated: the next one up.
    assert default_levels(run) == (4, 3)
    with pytest.raises(DataValidationError, match="level 7 has no grouping"):
        build_report(run, [7])


def test_cli_report_and_curve_recommendation(tmp_path: Path, cli: CliRunner) -> None:
    out = tmp_path / "run"
    code, stdout, err = cli("curve", "--data", "toy", "--levels", "6,5,3", "--out", out)
    assert code == 0, err
    assert "recommended level: 3 agencies" in stdout and "within 1% of it: 3" in stdout
    report = tmp_path / "report.html"
    code, _, err = cli("report", out, "--levels", "5", "-o", report)
    assert code == 0, err
    page = _parse(report.read_text(encoding="utf-8"))
    assert len([tag for tag, _ in page.tags if tag == "img"]) == 2 + 2
    assert "Maps: today (6 agencies) and 5 agencies." in " ".join(page.text.split())
    with pytest.raises(DataValidationError, match="expected whole numbers"):
        parse_levels_option("5,x")
