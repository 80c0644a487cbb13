"""The exception hierarchy: bad input, no answer, solver trouble."""

from collections.abc import Iterable


class OptimizerError(Exception):
    """Base class of every error the project raises on purpose."""


class DataValidationError(OptimizerError, ValueError):
    """Input files that break the data contract; one line per problem.

    Parameters
    ----------
    problems : iterable of str
        Each problem, already formatted as ``(file, row N, column 'c') | message``.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the input:"
        super().__init__("\n".join([head, *self.problems]))

    def __reduce__(self) -> tuple[type, tuple[list[str]]]:
        """Pickle by the problems, so the error crosses from a worker process intact."""
        return (type(self), (self.problems,))


class InfeasibleError(OptimizerError):
    """A valid input with no grouping that satisfies every rule."""


class SolverError(OptimizerError):
    """The solver failed, or returned something the evaluator contradicts."""


class NoGroupingError(SolverError):
    """The time limit came before any grouping was found; ``bound`` still holds."""

    def __init__(self, message: str, bound: float) -> None:
        super().__init__(message)
        self.message = message
        self.bound = bound

    def __reduce__(self) -> tuple[type, tuple[str, float]]:
        """Pickle by message and bound, so the error crosses from a worker process intact."""
        return (type(self), (self.message, self.bound))


def where(file: str, row: int | None = None, column: str | None = None) -> str:
    """Format the location part of a validation message.

    Parameters
    ----------
    file : str
        The file name, e.g. ``"spend.csv"``.
    row : int, optional
        The line number in the file as a spreadsheet shows it: the header is
        row 1, the first data row is row 2.
    column : str, optional
        The column name.

    Returns
    -------
    str
        ``(spend.csv, row 17, column 'spend')``.

    Examples
    --------
    >>> where("spend.csv", 17, "spend")
    "(spend.csv, row 17, column 'spend')"
    """
    parts = [file]
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column '{column}'")
    return "(" + ", ".join(parts) + ")"
