"""The model: scenario switches, categories and their discount bands.

A model is normally read from TOML (see :func:`optimizer.schema.load_model`)
but every part is a plain frozen object, so it can be built in code too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Band:
    """A marginal discount band: ``rate`` applies to volume in ``[lower, upper)``."""

    lower: float
    upper: float
    rate: float


@dataclass(frozen=True)
class Category:
    """A spend category and its costs.

    Parameters
    ----------
    name : str
        The category id used in ``spend.csv``; left blank, a :class:`Model`
        fills it from the category's key.
    desk_cost : float
        GBP/yr for every agency that buys this category.
    distance_cost : float
        GBP per GBP 1m of spend per km per year.
    radius_km : float or None
        The furthest a body may be from the agency buying this category for it.
    bands : tuple of Band
        Marginal discount bands, starting at 0 and ending at ``inf``.
    description : str
        Free text.
    """

    name: str = ""
    desk_cost: float = 0.0
    distance_cost: float = 0.0
    radius_km: float | None = None
    bands: tuple[Band, ...] = (Band(0.0, math.inf, 0.0),)
    description: str = ""

    def saving(self, volume: float) -> float:
        """Return the discount earned on an aggregated ``volume`` (MODEL.md).

        Examples
        --------
        >>> c = Category("ict", bands=(Band(0, 10, 0.0), Band(10, math.inf, 0.5)))
        >>> c.saving(30.0)
        10.0
        """
        return sum(b.rate * max(0.0, min(volume, b.upper) - b.lower) for b in self.bands)

    def intercepts(self) -> tuple[float, ...]:
        """Return ``b_t`` so that ``V - saving(V) = min_t ((1 - r_t) V + b_t)``.

        Examples
        --------
        >>> c = Category("ict", bands=(Band(0, 10, 0.0), Band(10, math.inf, 0.5)))
        >>> c.intercepts()
        (0.0, 5.0)
        """
        return tuple(b.rate * b.lower - self.saving(b.lower) for b in self.bands)


@dataclass(frozen=True)
class Scenario:
    """Scenario-wide costs and rule switches (rules 3 and 5 of MODEL.md)."""

    agency_fixed_cost: float = 0.0
    same_nation: bool = True
    split_categories: bool = True
    description: str = ""


@dataclass(frozen=True)
class Model:
    """A scenario and its categories, keyed by category id.

    A model built in code is checked by the same rules, with the same
    messages, as a TOML file (:func:`optimizer.schema.check_model`): bands
    may be given as ``(lower, upper, rate)`` triples, and a category's blank
    ``name`` is filled from its key.

    Raises
    ------
    DataValidationError
        Listing every invalid value, e.g. overlapping bands or a negative cost.

    Examples
    --------
    >>> m = Model(Scenario(), {"ict": Category(desk_cost=5.0, bands=((0, math.inf, 0.1),))})
    >>> m.categories["ict"].name, m.categories["ict"].bands
    ('ict', (Band(lower=0.0, upper=inf, rate=0.1),))
    >>> m.with_scenario(same_nation=False).scenario.same_nation
    False
    >>> m.with_category("ict", desk_cost=-1.0)
    Traceback (most recent call last):
    ...
    optimizer.errors.DataValidationError: 1 problem in the input:
    (model, column 'categories.ict.desk_cost') | must be >= 0, got -1.0
    """

    scenario: Scenario
    categories: Mapping[str, Category]
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from optimizer.schema import check_model  # schema builds models: import it late

        scenario, categories = check_model(self.scenario, self.categories)
        object.__setattr__(self, "scenario", scenario)
        object.__setattr__(self, "categories", categories)

    def with_scenario(self, **changes: Any) -> Model:
        """Return a copy with some scenario fields changed."""
        return replace(self, scenario=replace(self.scenario, **changes))

    def with_category(self, name: str, **changes: Any) -> Model:
        """Return a copy with some fields of one category changed."""
        categories = dict(self.categories)
        categories[name] = replace(categories[name], **changes)
        return replace(self, categories=categories)
