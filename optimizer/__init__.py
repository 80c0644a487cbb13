"""The procurement consolidation optimizer.

Load a dataset under a model, evaluate a grouping, solve a level, sweep the
consolidation curve.

Examples
--------
>>> import optimizer
>>> inst = optimizer.load("toy")
>>> alone = inst.spend.assign(site_id=inst.spend["body_id"])
>>> optimizer.evaluate(inst, alone).total
506000.0
"""

from optimizer.catalog import load
from optimizer.curve import Curve, CurveOptions, consolidation_curve
from optimizer.engine import SolveResult, solve_level
from optimizer.errors import DataValidationError, InfeasibleError, OptimizerError, SolverError
from optimizer.evaluate import Evaluation, evaluate
from optimizer.instance import Instance, load_instance
from optimizer.model import Band, Category, Model, Scenario
from optimizer.results import read_groupings, write_groupings
from optimizer.schema import load_model
from optimizer.solve import SolverOptions

__all__ = [
    "Band",
    "Category",
    "Curve",
    "CurveOptions",
    "DataValidationError",
    "Evaluation",
    "InfeasibleError",
    "Instance",
    "Model",
    "OptimizerError",
    "Scenario",
    "SolveResult",
    "SolverError",
    "SolverOptions",
    "consolidation_curve",
    "evaluate",
    "load",
    "load_instance",
    "load_model",
    "read_groupings",
    "solve_level",
    "write_groupings",
]
