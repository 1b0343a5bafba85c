"""The base of every emsim document class: strict, immutable, no unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Strict", "num"]


class Strict(BaseModel):
    # strict: no "300" -> 300 coercion and no bools as numbers; forbid: unknown fields are
    # errors (a misspelt "puls_width_us" must not silently fall back to a default).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                              validate_default=True)


def num(ge=None, le=None, gt=None, lt=None, soft=None, doc="", default=...):
    """A float field with hard bounds (the format's limits) and UI ``softbounds``."""
    extra = {"softbounds": list(soft)} if soft else None
    return Field(default, ge=ge, le=le, gt=gt, lt=lt, description=doc or None,
                 json_schema_extra=extra)
