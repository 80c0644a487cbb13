"""The HTML report of a curve run: one self-contained file to read or print.

Images are inline (SVG as ``data:`` URIs), styles are inline with print
rules, and nothing is fetched: no scripts, fonts or images from elsewhere.
The public figures set beside the headline come from ``_context.toml``,
shipped inside the package with their sources.
"""

from __future__ import annotations

import base64
import html
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes

from optimizer import plot
from optimizer.curve import EMPTY, status_quo_groupings
from optimizer.errors import DataValidationError
from optimizer.evaluate import COST_TERMS
from optimizer.model import Category
from optimizer.results import atomic_write_text
from optimizer.run import Run

CONTEXT_FILE = Path(__file__).with_name("_context.toml")


def load_context() -> dict[str, Any]:
    """The public figures and data attributions shipped with the package."""
    with CONTEXT_FILE.open("rb") as handle:
        return tomllib.load(handle)


def default_levels(run: Run) -> tuple[int, ...]:
    """The recommended level and one other worth showing beside it.

    The other is the level within 1% of the recommended total that lies
    furthest from it in number of agencies; failing that, the most
    consolidated level with a grouping (or the next one up, when the
    recommended level is the most consolidated).
    """
    best = run.recommended_level
    others = [k for k in run.levels if k not in (best, len(run.instance.bodies))]
    if not others:
        return (best,)
    near = [k for k in run.summary.get("within_1pct", []) if k in others]
    if near:
        other = max(near, key=lambda k: abs(math.log(k / best)))
    elif min(others) < best:
        other = min(others)
    else:
        other = min(k for k in others if k > best)
    return tuple(sorted((best, other), reverse=True))


def write_report(run: Run, path: Path, levels: Sequence[int] | None = None) -> None:
    """Write the report of ``run`` to ``path`` (atomically).

    Parameters
    ----------
    run : Run
        An opened run folder (:func:`optimizer.run.open_run`).
    path : Path
        The HTML file to write.
    levels : sequence of int, optional
        The levels mapped beside the status quo; default :func:`default_levels`.
    """
    atomic_write_text(path, build_report(run, levels))


def build_report(run: Run, levels: Sequence[int] | None = None) -> str:
    """The report of ``run`` as one self-contained HTML document."""
    chosen = tuple(levels) if levels else default_levels(run)
    for k in chosen:
        run.row(k)
    facts = Headline.of(run)
    body = "\n".join(
        [
            _header(run, facts),
            _curve_section(run, facts),
            _breakdown_section(run, chosen),
            _maps_section(run, chosen),
            _context_section(facts, load_context()),
            _assumptions_section(run),
            _data_section(run, load_context()),
        ]
    )
    title = f"Consolidating procurement: {run.instance.name}"
    return PAGE.format(title=html.escape(title), style=STYLE, body=body)


@dataclass(frozen=True)
class Headline:
    """The numbers the report leads with."""

    bodies: int
    spend: float
    status_quo: float
    level: int
    total: float
    within: tuple[int, ...]
    tied: tuple[int, ...]
    overhead_now: float
    overhead_then: float

    @property
    def savings(self) -> float:
        """GBP/yr saved at the recommended level."""
        return self.status_quo - self.total

    @property
    def savings_pct(self) -> float:
        """The savings in per cent of the status quo total."""
        return 100 * self.savings / self.status_quo if self.status_quo else math.nan

    @classmethod
    def of(cls, run: Run) -> Headline:
        """Read the headline of a run."""
        level = run.recommended_level
        row = run.row(level)
        quo = run.status_quo()
        spend = float(run.instance.spend["spend"].sum())
        return cls(
            bodies=len(run.instance.bodies),
            spend=spend,
            status_quo=run.status_quo_total,
            level=level,
            total=float(row["total"]),
            within=tuple(int(k) for k in run.summary.get("within_1pct", [level])),
            tied=tuple(int(k) for k in run.summary.get("tied_levels", [level])),
            overhead_now=100 * (quo.breakdown["agencies"] + quo.breakdown["desks"]) / spend,
            overhead_then=100 * (float(row["agencies"]) + float(row["desks"])) / spend,
        )


# ----------------------------------------------------------------- formatting


def money(value: float) -> str:
    """GBP with a unit a reader takes in at a glance.

    Examples
    --------
    >>> money(1_825_680_748.6), money(48_600_000), money(-2500)
    ('GBP 1.83bn', 'GBP 48.6m', '-GBP 2,500')
    """
    if not math.isfinite(value):
        return "-"
    sign, value = ("-" if value < 0 else ""), abs(value)
    for scale, suffix, digits in ((1e9, "bn", 2), (1e6, "m", 1)):
        if value >= scale:
            return f"{sign}GBP {value / scale:,.{digits}f}{suffix}"
    return f"{sign}GBP {value:,.0f}"


def _esc(value: object) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], classes: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _image(ax: Axes, alt: str) -> str:
    data = base64.b64encode(plot.figure_bytes(ax, "svg")).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{_esc(alt)}">'


def _figure(ax: Axes, alt: str, caption: str) -> str:
    return f"<figure>{_image(ax, alt)}<figcaption>{caption}</figcaption></figure>"


# ------------------------------------------------------------------- sections


def _header(run: Run, facts: Headline) -> str:
    within = ", ".join(str(k) for k in facts.within)
    cards = [
        ("today", money(facts.status_quo) + "/yr", f"{facts.bodies} bodies each buying alone"),
        ("recommended", f"{facts.level} agencies", _why(facts)),
        ("saving", money(facts.savings) + "/yr", f"{facts.savings_pct:.1f}% of today's cost"),
        ("within 1%", within, "levels whose total is within 1% of the lowest"),
    ]
    boxes = "".join(
        f'<div class="card"><div class="label">{_esc(a)}</div>'
        f'<div class="big">{_esc(b)}</div><div class="note">{_esc(c)}</div></div>'
        for a, b, c in cards
    )
    worst = run.summary.get("worst_gap", math.nan)
    made = datetime.now(UTC).strftime("%d %B %Y")
    return f"""<header>
<p class="kicker">Procurement consolidation &middot; {_esc(run.instance.name)}</p>
<h1>{facts.bodies} purchasers buying through {facts.level} agencies
would save {_esc(money(facts.savings))} a year</h1>
<p class="lede">Today every one of the {facts.bodies} bodies buys for itself, for
{_esc(money(facts.status_quo))} a year (of which {_esc(money(facts.spend))} is the spend
itself). Grouping their buying into {facts.level} regional agencies, category by category,
gives {"a total tied with the lowest" if len(facts.tied) > 1 else "the lowest total"} the
model found: {_esc(money(facts.total))}, a saving of
{_esc(money(facts.savings))} ({facts.savings_pct:.1f}%) a year.
The levels within 1% of it are {_esc(within)} agencies.{_tie_sentence(facts)}</p>
<div class="cards">{boxes}</div>
<p class="meta">Made {made} from the run in <code>{_esc(run.folder.name)}</code>;
{len(run.curve)} levels; the largest gap between a total and its proven bound:
{_gap(worst)}.</p>
</header>"""


def _why(facts: Headline) -> str:
    """Why the recommended level: the lowest total, or the fewest agencies of a tie."""
    if len(facts.tied) < 2:
        return f"lowest total: {money(facts.total)}/yr"
    return f"fewest agencies of the tied levels: {money(facts.total)}/yr"


def _tie_sentence(facts: Headline) -> str:
    """A sentence naming the levels tied within their proven gaps, if any."""
    if len(facts.tied) < 2:
        return ""
    levels = ", ".join(str(k) for k in facts.tied)
    return (
        f" Levels {_esc(levels)} are tied within their proven gaps: each one's proven bound"
        " is at or below the lowest total, so any of them may be the cheapest; the"
        " recommendation is the one with the fewest agencies."
    )


def _gap(value: object) -> str:
    number = float(value) if isinstance(value, int | float) else math.nan
    if not math.isfinite(number):
        return "no bound"
    return f"{100 * number:.2f}%"


def _curve_section(run: Run, facts: Headline) -> str:
    figure = _figure(
        plot.plot_curve(run.curve, plot.new_axes(9.0, 5.2)),
        "The consolidation curve",
        "Total annual cost at each number of agencies (left axis), read as savings against"
        " today on the right. The dashed line is the proven lower bound: no grouping with that"
        " many agencies can cost less, so the shaded gap is all that the search left open."
        " The star is the recommended level; the green band holds the totals within 1% of it.",
    )
    rows = [_curve_row(row, facts) for row in run.curve.to_dict("records")]
    table = _table(
        ["agencies", "total / yr", "saving / yr", "saving", "proven bound", "gap", "status"],
        rows,
        "numbers",
    )
    return f"""<section>
<h2>1. The consolidation curve</h2>
{figure}
<h3>Savings at every level</h3>
{table}
<p class="note">Bold: the recommended level; marked &#10003;: within 1% of it.
A level "time_limit" stopped at its time limit: its grouping is the best found
and the bound still holds.</p>
</section>"""


def _curve_row(row: Mapping[Any, Any], facts: Headline) -> list[str]:
    level = int(row["level"])
    mark = " &#10003;" if level in facts.within else ""
    name = f"<strong>{level}</strong>" if level == facts.level else str(level)
    if row["status"] in EMPTY or not math.isfinite(float(row["total"])):
        return [
            name,
            "-",
            "-",
            "-",
            _esc(money(float(row["lower_bound"]))),
            "-",
            _esc(row["status"]),
        ]
    return [
        name + mark,
        _esc(money(float(row["total"]))),
        _esc(money(float(row["savings"]))),
        f"{float(row['savings_pct']):.2f}%",
        _esc(money(float(row["lower_bound"]))),
        _gap(float(row["gap"])),
        _esc(row["status"]),
    ]


def _breakdown_section(run: Run, chosen: Sequence[int]) -> str:
    figure = _figure(
        plot.plot_breakdown(run.curve, plot.new_axes(9.0, 4.8)),
        "Cost breakdown by level",
        "What is paid on top of the spend at each level: agency fixed costs, category desks"
        " and the cost of distance stacked upwards, volume discounts downwards; the diamond"
        " is their sum, the level's total minus the spend.",
    )
    quo = run.status_quo().breakdown
    columns = [("today", quo)] + [(f"{k} agencies", run.evaluation(k).breakdown) for k in chosen]
    labels = {"savings": "volume discounts (in purchases)"}
    rows = [
        [_esc(labels.get(t, t))] + [_esc(money(b[t])) for _, b in columns]
        for t in [*COST_TERMS, "savings", "total"]
    ]
    table = _table(["GBP per year", *[name for name, _ in columns]], rows, "numbers")
    return f"""<section>
<h2>2. Where the money goes</h2>
{figure}
{table}
</section>"""


def _maps_section(run: Run, chosen: Sequence[int]) -> str:
    today = run.status_quo()
    quo = today.level
    note = "every body buys for itself"
    figures = [_map(run, status_quo_groupings(run.instance), "Today", note, today.open_sites)]
    for k in chosen:
        row = run.row(k)
        status = f"{row['status']}, gap {_gap(float(row['gap']))}"
        figures.append(_map(run, run.groupings(k), f"{k} agencies", status, run.unlisted_sites(k)))
    return f"""<section class="maps">
<h2>3. Who buys with whom</h2>
<p>Each dot is a body, coloured by its main agency (the one buying most of its spend)
and joined to it; squares are agencies; the faint lines are the network that distances are
measured on. Categories without a radius can be bought further away than the main agency:
the table beside each map counts the agencies buying each category. Maps: today ({quo}
agencies) and {" and ".join(str(k) for k in chosen)} agencies.</p>
{"".join(figures)}
</section>"""


def _map(run: Run, groupings: pd.DataFrame, title: str, note: str, unlisted: Sequence[str]) -> str:
    ax = plot.plot_map(run.instance, groupings, plot.new_axes(7.0, 9.0), open_sites=unlisted)
    ax.set_title(title, loc="left", fontweight="bold")
    per_category = groupings.groupby("category")["site_id"].nunique()
    opened = sorted(set(groupings["site_id"]) | set(unlisted))
    nations = run.instance.sites.loc[opened, "nation"].value_counts().sort_index()
    rows = [[_esc(c), str(int(per_category.get(c, 0)))] for c in run.instance.categories]
    rows += [[f"<em>in {_esc(n)}</em>", str(int(v))] for n, v in nations.items()]
    rows.append(["<strong>agencies in all</strong>", f"<strong>{len(opened)}</strong>"])
    table = _table(["category", "agencies"], rows, "numbers compact")
    return f"""<figure class="map">{_image(ax, f"Map: {title}")}
<div class="side"><h3>{_esc(title)}</h3><p class="note">{_esc(note)}</p>{table}</div>
</figure>"""


def _context_section(facts: Headline, context: dict[str, Any]) -> str:
    rows = [
        [_esc(e["figure"]), _esc(e["value"]), _esc(e["source"]), _esc(_beside(e, facts))]
        for e in context["estimate"]
    ]
    table = _table(["public figure", "value", "source", "this model"], rows, "context")
    return f"""<section>
<h2>4. Beside the public record</h2>
<p>The model's headline, {_esc(money(facts.savings))} a year ({facts.savings_pct:.1f}% of
today's cost) at {facts.level} agencies, set beside figures from the UK efficiency reviews.
They are context for reading the result: they measure different things over different
scopes, and the model was not tuned to them. {_esc(context["source_note"])}</p>
{table}
</section>"""


def _beside(estimate: dict[str, Any], facts: Headline) -> str:
    kind = estimate["compare"]
    if kind == "spend":
        share = 100 * facts.spend / float(estimate["annual_low"])
        return f"{money(facts.spend)} a year of council spend modelled ({share:.0f}% of it)"
    if kind == "purchasers":
        return f"{facts.bodies} bodies; lowest total at {facts.level} agencies"
    if kind == "savings_pct":
        return f"{facts.savings_pct:.1f}% of today's total cost"
    if kind == "overhead_pct":
        return (
            f"agencies and desks cost {facts.overhead_now:.1f}% of spend today,"
            f" {facts.overhead_then:.1f}% at {facts.level} agencies"
        )
    text = f"{money(facts.savings)} a year"
    if "annual_low" not in estimate:
        return text
    ratios = sorted({facts.savings / float(estimate[k]) for k in ("annual_low", "annual_high")})
    return f"{text}: {_ratio(ratios)} this figure"


def _ratio(ratios: Sequence[float]) -> str:
    """One or two ratios as multiples, or as percentages when all are below one.

    Examples
    --------
    >>> _ratio([3.04, 4.56]), _ratio([0.24]), _ratio([0.001, 0.002])
    ('3.0 to 4.6 times', '24% of', 'under 1% of')
    """
    if max(ratios) < 1:
        shown = dict.fromkeys(f"{100 * r:.0f}%" if r >= 0.01 else "under 1%" for r in ratios)
        return " to ".join(shown) + " of"
    return " to ".join(f"{r:.1f}" for r in ratios) + " times"


def _assumptions_section(run: Run) -> str:
    scenario = run.instance.model.scenario
    rows = [_category_row(cat) for cat in run.instance.model.categories.values()]
    table = _table(
        [
            "category",
            "desk cost per agency",
            "distance cost per GBP 1m per km",
            "radius",
            "discount bands (marginal)",
            "what",
        ],
        rows,
        "assumptions",
    )
    options = run.record.get("options", {}).get("solver", {})
    return f"""<section>
<h2>5. The model's assumptions</h2>
<ul>
<li>Every body buys each category through one agency; an agency is a site hosted by a body,
and a body hosting an open agency buys everything through it.</li>
<li>Annual cost = agencies (GBP {scenario.agency_fixed_cost:,.0f} fixed cost each)
+ desks (one per agency and category bought) + purchases (the spend less volume discounts
on each agency's total, by marginal bands like income-tax bands) + distance (per GBP 1m
of spend per network km to the agency).</li>
<li>An agency serves only its own nation: {_yes(scenario.same_nation)}.
A body may split its categories between agencies: {_yes(scenario.split_categories)}.
Categories with a radius must be bought within that many network km.</li>
<li>Today's cost is computed the same way with every body buying alone, not assumed.</li>
<li>Each level was solved to a relative gap of {_esc(options.get("gap", "-"))} of the cost
the groupings can change (the total less the least purchase cost any grouping can reach),
or within GBP {_esc(options.get("gap_abs", 0))} of its bound, or a time
limit of {_esc(options.get("time_limit", "-"))} s with {_esc(options.get("solver", "-"))};
every grouping was re-costed by an independent evaluator.</li>
</ul>
<p>{_esc(scenario.description)}</p>
{table}
</section>"""


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _category_row(cat: Category) -> list[str]:
    radius = "none" if cat.radius_km is None else f"{cat.radius_km:,.0f} km"
    bands = "; ".join(
        f"{_short(b.lower)}{'+' if math.isinf(b.upper) else '-' + _short(b.upper)}:"
        f" {100 * b.rate:g}%"
        for b in cat.bands
    )
    return [
        _esc(cat.name),
        f"GBP {_short(cat.desk_cost)}",
        f"GBP {cat.distance_cost:g}",
        radius,
        _esc(bands),
        _esc(cat.description),
    ]


def _short(value: float) -> str:
    """A volume in short form.

    Examples
    --------
    >>> _short(250e6), _short(0.0), _short(5000)
    ('250m', '0', '5k')
    """
    for scale, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _data_section(run: Run, context: dict[str, Any]) -> str:
    inst = run.instance
    notes = context["attribution"]
    text = notes.get(inst.name, notes["default"])
    inputs = run.record.get("inputs", {})
    versions = run.summary.get("versions", {})
    shown = ", ".join(f"{k} {v}" for k, v in versions.items())
    return f"""<section class="data">
<h2>6. Data and attribution</h2>
<p>{_esc(text)}</p>
<p>Dataset <code>{_esc(inputs.get("data", inst.name))}</code>, model
<code>{_esc(inputs.get("model", "-"))}</code>: {len(inst.bodies)} bodies,
{len(inst.sites)} candidate sites, {len(inst.categories)} categories,
{_esc(money(float(inst.spend["spend"].sum())))} of spend a year.</p>
<p class="note">Software: {_esc(shown)}.</p>
</section>"""


def parse_levels_option(text: str) -> list[int]:
    """Parse ``--levels A,B`` of the report.

    Examples
    --------
    >>> parse_levels_option("100, 50")
    [100, 50]
    """
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DataValidationError(
            [f"(--levels) | expected whole numbers separated by commas, got {text!r}"]
        ) from None


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""

STYLE = """
:root { --ink: #1d2533; --muted: #5b6473; --rule: #d9dde3; --accent: #1b3a6b; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 32px 28px 64px; }
h1 { font-size: 2rem; line-height: 1.2; margin: 0.2em 0 0.5em; color: var(--accent); }
h2 { font-size: 1.35rem; margin: 2.2em 0 0.6em; padding-bottom: 0.2em;
  border-bottom: 2px solid var(--accent); }
h3 { font-size: 1.05rem; margin: 1.6em 0 0.4em; }
.kicker { text-transform: uppercase; letter-spacing: 0.08em; font-size: 0.8rem;
  color: var(--muted); margin: 0; }
.lede { font-size: 1.08rem; max-width: 60em; }
.meta, .note { color: var(--muted); font-size: 0.85rem; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin: 1.2em 0; }
.card { border: 1px solid var(--rule); border-left: 4px solid var(--accent);
  padding: 10px 14px; border-radius: 4px; }
.card .label { font-size: 0.75rem; text-transform: uppercase; letter-spacing: 0.06em;
  color: var(--muted); }
.card .big { font-size: 1.45rem; font-weight: 700; margin: 2px 0; white-space: nowrap; }
.card .note { font-size: 0.8rem; }
figure { margin: 1em 0; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 0.3em; }
table { border-collapse: collapse; width: 100%; margin: 0.8em 0; font-size: 0.88rem; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--rule); text-align: left;
  vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); font-weight: 600; vertical-align: bottom; }
table.numbers td + td, table.numbers th + th { text-align: right; white-space: nowrap;
  font-variant-numeric: tabular-nums; }
table.compact { font-size: 0.8rem; }
table.compact td, table.compact th { padding: 3px 6px; overflow-wrap: anywhere; }
table.context td:nth-child(4) { font-weight: 600; }
table.assumptions td:nth-child(-n+4) { white-space: nowrap; }
table.assumptions td:nth-child(6) { color: var(--muted); font-size: 0.8rem; }
figure.map { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr);
  gap: 24px; align-items: start; margin: 1.5em 0 2.5em; }
figure.map .side h3 { margin-top: 0.5em; }
code { font-size: 0.9em; background: #f3f4f6; padding: 0 3px; border-radius: 3px; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { font-size: 9.5pt; }
  main { max-width: none; padding: 0; }
  h1 { font-size: 17pt; }
  h2 { font-size: 13pt; margin-top: 1.4em; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  figure, tr, .card, .cards, li { break-inside: avoid; page-break-inside: avoid; }
  figure img { width: auto; max-width: 100%; max-height: 115mm; margin: 0 auto; }
  thead { display: table-header-group; }
  .card .big { font-size: 13pt; }
  figure.map { grid-template-columns: minmax(0, 13fr) minmax(0, 7fr); gap: 10px;
    break-before: page; page-break-before: always; }
  table.numbers { break-inside: avoid; page-break-inside: avoid; }
  table.compact { font-size: 7.5pt; }
  figure.map img { max-height: 235mm; }
  code { background: none; }
}
@media screen and (max-width: 760px) {
  .cards { grid-template-columns: repeat(2, 1fr); }
  figure.map { grid-template-columns: 1fr; }
}
"""
