"""The repair operations a playbook can name in a fix's ``params.operations``: typed models only.

Kept apart from :mod:`llmedic.anomalies.data.repair`, which applies them with pandas and SciPy, so that
validating a playbook (every flow does it at start-up) does not import those.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Coerce",
    "Dedupe",
    "DropRows",
    "Impute",
    "NormaliseDates",
    "NormaliseEncoding",
    "Operation",
    "OperationBase",
    "Outliers",
    "Rule",
    "Rules",
]


class OperationBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[str] | None = None
    """Columns to work on (default: the columns the incident found in breach, or every declared
    column when the repair runs outside an incident)."""


class Impute(OperationBase):
    """Fill missing values."""

    op: Literal["impute"]
    strategy: Literal["mean", "median", "mode", "constant", "knn"] = "median"
    """For numeric columns; text and category columns always take the mode (or ``value``)."""
    value: str | float | int | bool | None = None
    """The constant for ``strategy: constant``."""
    k: int = Field(5, ge=1, le=50)
    """Neighbours for ``knn`` (distance over the other numeric columns, standardised)."""
    cells: Literal["missing", "blanked"] = "missing"
    """``missing``: every missing cell of the column; ``blanked``: only the cells an earlier
    operation of this repair set to missing (the impossible values ``rules`` blanked), so a quality
    repair leaves the batch's other missing cells as they were."""


class DropRows(OperationBase):
    """Drop rows with missing values, but only while they are a small share of the data."""

    op: Literal["drop_rows"]
    max_share: float = Field(0.05, gt=0, le=1)


class Coerce(OperationBase):
    """Parse values as the declared type (``to_numeric(errors="coerce")``); what still does not parse
    becomes missing, or takes the column's median/mean/mode with ``fill``."""

    op: Literal["coerce_types"]
    strip_thousands: bool = True
    """Read ``1,234.5`` and ``$1,234`` as numbers before giving up on them."""
    fill: Literal["missing", "median", "mean", "mode"] = "missing"


class NormaliseDates(OperationBase):
    """Rewrite dates in any recognised format in the column's canonical (first declared) format."""

    op: Literal["normalise_dates"]


class NormaliseEncoding(OperationBase):
    """Repair text that was UTF-8 decoded as cp1252 (mojibake); strip replacement characters."""

    op: Literal["normalise_encoding"]


class Rule(BaseModel):
    """One correction rule on one column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    match: str | None = None
    """Regular expression; matching values are rewritten with ``replace`` (``\\1`` groups allowed)."""
    replace: str = ""
    map: dict[str, str] = Field(default_factory=dict)
    """Exact value → replacement."""
    strip: bool = False
    case: Literal["lower", "upper", "title"] | None = None


class Rules(OperationBase):
    """Rule-based corrections; also snaps values that differ from an allowed value only by case or
    surrounding spaces onto that value, and blanks values still outside the allowed set or range."""

    op: Literal["rules"]
    rules: list[Rule] = Field(default_factory=list)
    snap_allowed: bool = True
    invalid_to_missing: bool = True


class Outliers(OperationBase):
    """Remove, cap (winsorise at the fences) or flag outliers."""

    op: Literal["outliers"]
    method: Literal["iqr", "robust_z", "sigma3"] | None = None
    """Default: the dataset's ``thresholds.outlier_method``."""
    treatment: Literal["remove", "cap", "flag"] = "cap"


class Dedupe(OperationBase):
    """Drop exact duplicate rows, and (``by: key``) rows repeating a key; the first row is kept."""

    op: Literal["dedupe"]
    by: Literal["rows", "key"] = "rows"


Operation = Annotated[
    Impute | DropRows | Coerce | NormaliseDates | NormaliseEncoding | Rules | Outliers | Dedupe,
    Field(discriminator="op"),
]
