"""The base of every emsim document class: strict, immutable, no unknown fields."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emsim.errors import EmsimError

__all__ = ["Strict", "num"]


class Strict(BaseModel):
    # strict: no "300" -> 300 coercion and no bools as numbers; forbid: unknown fields are
    # errors (a misspelt "puls_width_us" must not silently fall back to a default).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                              validate_default=True)

    #: The typed error raised when the class is built directly in Python with bad values (the
    #: program and patient modules set ProgramError / PatientError); documents read from JSON
    #: get the same errors through :func:`emsim._validation.validate_document`.
    input_error: ClassVar[type[EmsimError]] = EmsimError

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
            return
        except ValidationError as exc:
            from emsim._validation import translate

            # the path starts at the class built, e.g. "Channel.spacing_cm"
            problems = translate(exc, type(self), self.input_error, root_name=type(self).__name__)
        from emsim._validation import raise_all

        raise_all(problems)  # outside the handler: no pydantic traceback chained to it

    # Marked as pydantic's own __init__ so that pydantic keeps validating nested models and
    # JSON documents in its core (strict JSON rules, document paths) instead of calling this
    # for every nested object; only a direct construction in Python comes through here.
    # tests/program/test_direct_construction.py fails if a pydantic release changes that.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


def num(ge=None, le=None, gt=None, lt=None, soft=None, doc="", default=...):
    """A float field with hard bounds (the format's limits) and UI ``softbounds``."""
    extra = {"softbounds": list(soft)} if soft else None
    return Field(default, ge=ge, le=le, gt=gt, lt=lt, description=doc or None,
                 json_schema_extra=extra)
