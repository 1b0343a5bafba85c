"""Turn pydantic validation errors into ``ProgramError``/``PatientError`` lines.

Each line names the JSON path (without pydantic's union tags), the value and the allowed
range. The allowed range is read from the field's declared bounds, so a pulse width of -5
says "allowed 10 to 1000 µs" rather than only "must be >= 10".
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from emsim.errors import EmsimError

_UNITS = [("_cm2", " cm²"), ("_us", " µs"), ("_ms", " ms"), ("_hz", " Hz"), ("_s", " s"),
          ("_cm", " cm"), ("_mm", " mm"), ("_pct", " %"), ("_min", " min"), ("_ma", " mA"),
          ("_years", " years"), ("_kg", " kg"), ("_nm", " N·m"), ("ma", " mA")]


def unit_of(name: str) -> str:
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def _fmt(x: float) -> str:
    return f"{x:g}"


def bounds_text(model: type[BaseModel], field: str) -> str | None:
    """'10 to 1000 µs' from the field's ge/gt/le/lt metadata, or None if it has none."""
    info = model.model_fields.get(field)
    if info is None:
        return None
    lo = hi = None
    lo_open = hi_open = False
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, lo_open = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
        if getattr(m, "lt", None) is not None:
            hi, hi_open = m.lt, True
    if lo is None and hi is None:
        return None
    unit = unit_of(field)
    if lo is not None and hi is not None:
        left = f"more than {_fmt(lo)}" if lo_open else _fmt(lo)
        right = f"less than {_fmt(hi)}" if hi_open else _fmt(hi)
        return f"{left} to {right}{unit}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}{unit}"
    return f"{'<' if hi_open else '<='} {_fmt(hi)}{unit}"


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[tuple[str | None, Any]]:
    """(tag, type) of each member of a (possibly tagged) union."""
    out = []
    for arg in get_args(tp):
        tag = None
        if get_origin(arg) is Annotated:
            for meta in get_args(arg)[1:]:
                if type(meta).__name__ == "Tag":
                    tag = meta.tag
        out.append((tag, _strip(arg)))
    return out


def walk(root: type[BaseModel], loc: tuple) -> tuple[list[str | int], type[BaseModel] | None, str | None]:
    """Follow a pydantic error location through the model types.

    Returns the cleaned path (union tags dropped), the innermost model class reached and the
    field name in it (``None`` if the location ends inside a list or dict).
    """
    path: list[str | int] = []
    tp: Any = root
    model: type[BaseModel] | None = None
    field: str | None = None
    for el in loc:
        tp = _strip(tp)
        # Optional[X] and tagged unions: pick the member before consuming the element.
        while get_origin(tp) in (Union, types.UnionType):
            members = _members(tp)
            tagged = [t for tag, t in members if tag is not None and tag == el]
            if tagged:
                tp = tagged[0]
                break
            concrete = [t for _, t in members if t is not type(None)]
            tp = _strip(concrete[0]) if len(concrete) == 1 else None
            if tp is None:
                return path, model, None
        else:
            pass
        if isinstance(el, str) and tp is not None and _is_tag_step(el, loc, path):
            continue  # the tag itself was consumed above
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if isinstance(el, str) and el in tp.model_fields:
                model, field = tp, el
                path.append(el)
                tp = tp.model_fields[el].annotation
                continue
            path.append(el)
            return path, tp, None
        origin = get_origin(tp)
        path.append(el)
        field = None
        if origin is tuple:
            args = get_args(tp)
            tp = args[0] if len(args) == 2 and args[1] is Ellipsis else (
                args[el] if isinstance(el, int) and el < len(args) else None)
        elif origin is dict:
            tp = get_args(tp)[1]
        else:
            tp = None
    return path, model, field


def _is_tag_step(el: str, loc: tuple, path: list) -> bool:
    # A union tag appears in the location right after the field that holds the union.
    return el in _TAGS and len(path) > 0 and path[-1] in _UNION_FIELDS


_TAGS = {"symmetric_biphasic", "asymmetric_biphasic", "monophasic", "khz_burst", "constant",
         "doublets", "variable_frequency", "absolute", "relative"}
_UNION_FIELDS = {"waveform", "pattern", "amplitude"}


def json_path(path: list[str | int], root: str = "$") -> str:
    out = root
    for el in path:
        out += f"[{el}]" if isinstance(el, int) else f".{el}"
    return out


def _ctx_bounds(ctx: dict, path: list[str | int]) -> str | None:
    """'>= 2 ms' from a bound pydantic reports for an item of an array (no field of its own)."""
    name = next((el for el in reversed(path) if isinstance(el, str)), "")
    for key, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if key in ctx:
            return f"{sign} {_fmt(ctx[key])}{unit_of(name)}"
    return None


def _fields_text(model: type[BaseModel] | None) -> str | None:
    if model is None:
        return None
    return "fields " + ", ".join(model.model_fields)


def translate(exc: ValidationError, root: type[BaseModel], error_cls: type[EmsimError], *,
              root_name: str = "$") -> list[EmsimError]:
    """One typed error per pydantic error, in document order; paths start at ``root_name``."""
    problems: list[EmsimError] = []
    errors = exc.errors(include_url=False)
    locs = [tuple(e.get("loc", ())) for e in errors]
    for err in errors:
        loc = tuple(err.get("loc", ()))
        # pydantic also reports "too short" for a list whose only item failed; that is noise.
        if err.get("type") == "too_short" and any(len(o) > len(loc) and o[:len(loc)] == loc for o in locs):
            continue
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        value = err.get("input")
        path, model, field = walk(root, loc)
        where = json_path(path, root_name)
        has_value = kind not in ("missing",)
        allowed = None
        if kind == "extra_forbidden":
            msg = f"unknown field {path[-1]!r}" if path else "unknown field"
            allowed = _fields_text(model if field is None else None)
            has_value = False
        elif kind == "missing":
            msg = "required field is missing"
            allowed = bounds_text(model, field) if model and field else None
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            msg = "value out of range"
            allowed = (bounds_text(model, field) if model and field else None) or _ctx_bounds(ctx, path) \
                or err.get("msg")
        elif kind in ("finite_number",):
            msg = "must be a finite number"
            allowed = (bounds_text(model, field) if model and field else None)
        elif kind == "literal_error":
            msg = "not an allowed value"
            allowed = str(ctx.get("expected", ""))
        elif kind in ("waveform_shape", "pattern_type"):
            msg = err.get("msg", "unknown kind")
            allowed = str(ctx.get("allowed", ""))
        elif kind == "union_tag_not_found":
            msg = f"missing the field {ctx.get('discriminator', 'that selects the kind')}"
        elif kind.endswith("_type") or kind in ("model_type", "dict_type", "tuple_type", "list_type"):
            expected = {"float_type": "a number", "int_type": "an integer", "string_type": "a string",
                        "bool_type": "true or false", "model_type": "an object",
                        "dict_type": "an object", "tuple_type": "an array",
                        "list_type": "an array"}.get(kind, kind.replace("_type", ""))
            msg = f"wrong type: expected {expected}"
            if kind == "tuple_type" and isinstance(value, list):
                # only in Python: JSON arrays are read as tuples, a Python list is refused (strict)
                msg = "wrong type: expected a tuple, not a list (classes built in Python take tuples for arrays)"
            if kind in ("float_type", "int_type") and isinstance(value, str):
                msg += " without units in the value (the unit is in the field name)"
            allowed = (bounds_text(model, field) if model and field else None)
        elif kind in ("too_short", "too_long"):
            msg = err.get("msg", kind)
        elif kind == "string_pattern_mismatch":
            msg = "does not match the required pattern"
            allowed = str(ctx.get("pattern", ""))
        else:
            msg = err.get("msg", kind)
        problems.append(error_cls(msg, path=where, value=value, allowed=allowed, has_value=has_value))
    return problems


# --------------------------------------------------------------------------- reading JSON

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024  # programs and patients are kilobytes; refuse before reading


def read_text(path, error_cls: type[EmsimError], max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """Read a UTF-8 document, refusing missing, oversized or undecodable files up front."""
    import os

    where = str(path)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise error_cls("file not found", path=where, unreadable=True) from None
    except OSError as exc:
        raise error_cls(f"cannot read file: {exc.strerror or exc}", path=where, unreadable=True) from None
    if not os.path.isfile(path):
        raise error_cls("not a regular file", path=where, unreadable=True)
    if size > max_bytes:
        raise error_cls("file too large", path=where, value=f"{size} bytes",
                        allowed=f"at most {max_bytes} bytes", unreadable=True)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error_cls(f"cannot read file: {exc.strerror or exc}", path=where, unreadable=True) from None
    if len(raw) > max_bytes:  # grew while we looked
        raise error_cls("file too large", path=where, allowed=f"at most {max_bytes} bytes", unreadable=True)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error_cls("not UTF-8 text", path=where, value=f"byte {exc.start}", unreadable=True) from None


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


class _DuplicateKey(ValueError):
    pass


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str | bytes, error_cls: type[EmsimError],
               max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Strict JSON: no NaN/Infinity, no duplicate keys, bounded size and nesting."""
    import json

    if isinstance(text, (bytes, bytearray)):
        if len(text) > max_bytes:
            raise error_cls("document too large", path="$", value=f"{len(text)} bytes",
                            allowed=f"at most {max_bytes} bytes", unreadable=True)
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error_cls("not UTF-8 text", path="$", value=f"byte {exc.start}", unreadable=True) from None
    if not isinstance(text, str):
        raise error_cls("expected JSON text", path="$", value=type(text).__name__, unreadable=True)
    if len(text) > max_bytes:
        raise error_cls("document too large", path="$", value=f"{len(text)} characters",
                        allowed=f"at most {max_bytes} bytes", unreadable=True)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        raise error_cls("duplicate key in a JSON object", path="$", value=str(exc), unreadable=True) from None
    except json.JSONDecodeError as exc:
        raise error_cls(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                        path="$", unreadable=True) from None
    except RecursionError:
        raise error_cls("JSON nested too deeply", path="$", unreadable=True) from None
    except ValueError as exc:  # NaN / Infinity constants, huge integer strings
        raise error_cls(f"malformed JSON: {exc}", path="$", unreadable=True) from None


def validate_document(data: Any, model: type[BaseModel], error_cls: type[EmsimError],
                      fmt: str):
    """Validate parsed JSON against a document model; raise the first problem (all attached)."""
    if not isinstance(data, dict):
        raise error_cls("a document must be a JSON object", path="$", value=type(data).__name__)
    if data.get("format") != fmt:
        raise error_cls("unsupported or missing format", path="$.format", value=data.get("format"),
                        allowed=repr(fmt), has_value=True)
    import json

    try:
        # Through JSON text so strict mode reads arrays as tuples and strings as literals, the
        # same way for files and for dicts built in Python.
        text = json.dumps(data, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise error_cls(f"not JSON-serialisable: {exc}", path="$") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise_all(translate(exc, model, error_cls))
    except RecursionError:
        raise error_cls("document nested too deeply", path="$") from None


def raise_all(problems: list[EmsimError]) -> None:
    """Raise the first problem with the full list attached as ``.problems``."""
    if problems:
        first = problems[0]
        first.problems = problems
        raise first


def _integral_floats(obj):
    # 85.0 -> 85 so that hand-written files stay canonical; NaN never reaches here.
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 2**53:
        return int(obj)
    if isinstance(obj, dict):
        return {k: _integral_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_integral_floats(v) for v in obj]
    return obj


def canonical_json(data: Any) -> str:
    """The one serialised form: 2-space indent, field order as declared, UTF-8, newline."""
    import json

    return json.dumps(_integral_floats(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write(path, text: str) -> None:
    """Write all or nothing: a temporary file in the same folder, then a rename."""
    import os
    import tempfile

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".emsim-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
