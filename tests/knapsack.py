"""A small knapsack model, for tests of the solver backends and of branch and cut."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from optimizer.formulation import MatrixModel


def knapsack(offset: float = 0.0) -> tuple[MatrixModel, np.ndarray, np.ndarray]:
    """A 30-item knapsack as a minimisation (minus the value packed, plus ``offset``).

    Returns the model, the items' weights and their values; the capacity is
    a third of the total weight.
    """
    rng = np.random.default_rng(7)
    n = 30
    weight = rng.integers(5, 20, n).astype(float)
    value = weight + rng.integers(0, 10, n)
    model = MatrixModel(
        -value,
        np.zeros(n),
        np.ones(n),
        np.ones(n, dtype=bool),
        sp.csr_matrix(weight[None, :]),
        np.array([-np.inf]),
        np.array([weight.sum() / 3]),
        offset=offset,
    )
    return model, weight, value
