"""What every model of the environment file shares: unknown keys are errors, values are frozen."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Name"]

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]


class _Strict(BaseModel):
    # Field docstrings become descriptions: error messages, JSON schema and the generated reference.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
