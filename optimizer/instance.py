"""One frozen, validated instance: tables keyed by business ids, and distances."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer import network, schema
from optimizer.errors import DataValidationError
from optimizer.model import Model

BODY_COLUMNS = ["name", "nation", "x_km", "y_km"]
SITE_COLUMNS = ["name", "nation", "x_km", "y_km", "fixed_cost", "body_id", "capacity", "status"]


@dataclass(frozen=True, eq=False)
class Instance:
    """Bodies, sites, spend, the model and the body-to-site distances.

    Attributes
    ----------
    name : str
        A label (the dataset's folder or shipped name).
    bodies : DataFrame
        Indexed by ``body_id``: ``name, nation, x_km, y_km`` and any extra columns;
        ``population`` (residents, float), when ``bodies.csv`` has it, is validated.
    sites : DataFrame
        Indexed by ``site_id``: ``name, nation, x_km, y_km, fixed_cost,
        body_id`` (host, ``""`` for none), ``capacity`` (NaN for none), ``status``;
        a NaN ``fixed_cost`` means the model's ``agency_fixed_cost``.
    spend : DataFrame
        ``body_id, category, spend`` rows with positive spend.
    model : Model
    distances : ndarray
        ``(len(bodies), len(sites))`` network km, in the row orders above.
    """

    name: str
    bodies: pd.DataFrame
    sites: pd.DataFrame
    spend: pd.DataFrame
    model: Model
    distances: np.ndarray
    edges: pd.DataFrame = field(repr=False)

    @property
    def categories(self) -> list[str]:
        """Category ids in model order."""
        return list(self.model.categories)

    @cached_property
    def spend_matrix(self) -> np.ndarray:
        """Spend as a ``(bodies, categories)`` array."""
        rows = self.bodies.index.get_indexer(pd.Index(self.spend["body_id"]))
        cols = pd.Index(self.categories).get_indexer(pd.Index(self.spend["category"]))
        out = np.zeros((len(self.bodies), len(self.categories)))
        np.add.at(out, (rows, cols), self.spend["spend"].to_numpy(dtype=float))
        return out

    @property
    def fixed_costs(self) -> np.ndarray:
        """GBP/yr per site: ``sites.csv``'s ``fixed_cost``, else the model's."""
        fixed = self.sites["fixed_cost"].fillna(self.model.scenario.agency_fixed_cost)
        return np.asarray(fixed.to_numpy(dtype=float))

    @cached_property
    def host_of_site(self) -> np.ndarray:
        """For each site, the row of the body hosting it, or -1."""
        return np.asarray(self.bodies.index.get_indexer(pd.Index(self.sites["body_id"])), dtype=int)

    def with_model(self, model: Model) -> Instance:
        """Return the same data under another model (spend must stay valid)."""
        unknown = set(self.spend["category"]) - set(model.categories)
        if unknown:
            raise DataValidationError(
                [f"(model) | categories missing from the model: {sorted(unknown)}"]
            )
        return Instance(
            self.name, self.bodies, self.sites, self.spend, model, self.distances, self.edges
        )


def load_instance(folder: Path | str, model: Model, name: str | None = None) -> Instance:
    """Read, validate and assemble a dataset folder under a model.

    Parameters
    ----------
    folder : path-like
        A folder in the public data contract (``bodies.csv``, ``spend.csv``,
        optional ``sites.csv`` and ``edges.csv``).
    model : Model
        The model whose categories ``spend.csv`` must use.
    name : str, optional
        A label; defaults to the folder name.

    Raises
    ------
    DataValidationError
        Listing every problem in every file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataValidationError([f"({folder}) | dataset folder not found"])
    problems = schema.Problems()
    system, bodies = schema.read_bodies(folder, problems)
    spend = schema.read_spend(folder, bodies, model, problems)
    site_system, sites = schema.read_sites(folder, bodies, problems)
    if bodies is not None and sites is not None and site_system != system:
        problems.add(
            "sites.csv", None, None, f"sites use {site_system} coordinates but bodies use {system}"
        )
    problems.raise_if_any()
    assert bodies is not None and spend is not None
    bodies, sites = _project(system, bodies, sites)
    body_frame = bodies.set_index("body_id")
    site_frame = _sites(sites, body_frame)
    nodes = _nodes(body_frame, site_frame)
    edges = schema.read_edges(folder, nodes.index, problems)
    problems.raise_if_any()
    if edges is None:
        edges = network.proximity_edges(nodes)
    g = network.graph(edges, nodes.index)
    network.check_connected(
        g, "edges.csv" if (folder / "edges.csv").exists() else "generated network"
    )
    distances = network.shortest_paths(g, body_frame.index, site_frame.index)
    positive = spend[spend["spend"] > 0].reset_index(drop=True)
    if positive.empty:  # bodies with no spend buy nothing: here no body buys anything
        raise DataValidationError(
            [f"({folder / 'spend.csv'}, column 'spend') | no body has spend above 0: none buys"]
        )
    return Instance(name or folder.name, body_frame, site_frame, positive, model, distances, edges)


def _project(
    system: str, bodies: pd.DataFrame, sites: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if system != "latlon":
        return bodies, sites
    lat0 = float(bodies["lat"].mean())
    bodies = bodies.copy()
    bodies["x_km"], bodies["y_km"] = schema.project(bodies["lat"], bodies["lon"], lat0)
    if sites is not None:
        sites = sites.copy()
        sites["x_km"], sites["y_km"] = schema.project(sites["lat"], sites["lon"], lat0)
    return bodies, sites


def _sites(sites: pd.DataFrame | None, bodies: pd.DataFrame) -> pd.DataFrame:
    """Every body is a candidate site unless ``sites.csv`` says otherwise."""
    if sites is None:
        frame = bodies[["name", "nation", "x_km", "y_km"]].copy()
        frame.index.name = "site_id"
        frame["fixed_cost"] = np.nan
        frame["body_id"] = frame.index
        frame["capacity"] = np.nan
        frame["status"] = "candidate"
        return frame
    frame = sites.set_index("site_id")
    extra = [c for c in frame.columns if c not in SITE_COLUMNS and c not in ("lat", "lon")]
    return frame[SITE_COLUMNS + extra]


def _nodes(bodies: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """Bodies and sites as graph nodes; a site whose id is a body's is that node."""
    own = sites.loc[~sites.index.isin(bodies.index), ["x_km", "y_km"]]
    return pd.concat([bodies[["x_km", "y_km"]], own])
