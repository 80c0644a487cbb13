"""A seeded synthetic dataset folder in the public data contract, for engine and curve tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MODEL = """\
[scenario]
agency_fixed_cost = 400000
same_nation = true
split_categories = true

[categories.care]
desk_cost = 150000
distance_cost = 40.0
radius_km = 120
bands = [[0, 4e6, 0.0], [4e6, 2e7, 0.03], [2e7, inf, 0.05]]

[categories.ict]
desk_cost = 200000
distance_cost = 0.0
bands = [[0, 2e6, 0.0], [2e6, 1e7, 0.05], [1e7, inf, 0.1]]
"""


def write_synthetic(folder: Path, n_bodies: int = 30, seed: int = 7) -> Path:
    """Write bodies.csv and spend.csv (two nations, two categories) and model.toml."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"b{i:03d}" for i in range(n_bodies)]
    xy = rng.uniform(0, 300, size=(n_bodies, 2))
    nation = np.where(xy[:, 0] < 200, "East", "West")
    pd.DataFrame(
        {
            "body_id": ids,
            "name": ids,
            "nation": nation,
            "x_km": xy[:, 0].round(3),
            "y_km": xy[:, 1].round(3),
        }
    ).to_csv(folder / "bodies.csv", index=False)
    size = rng.lognormal(0.0, 0.8, n_bodies)
    spend = pd.DataFrame(
        {
            "body_id": ids * 2,
            "category": ["care"] * n_bodies + ["ict"] * n_bodies,
            "spend": np.r_[size * 2.5e6, size * 6e5].round(0),
        }
    )
    spend.to_csv(folder / "spend.csv", index=False)
    (folder / "model.toml").write_text(MODEL, encoding="utf-8")
    return folder
