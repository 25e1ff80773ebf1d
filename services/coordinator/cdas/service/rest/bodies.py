"""Request bodies of the REST door: one gate every JSON body passes, and the contract's words for
what pydantic finds wrong in it.

The gate, in order (each refusal changes nothing):

1. the Content-Type must be JSON (``application/json`` or ``application/*+json``), else 415.
   A form or ``text/plain`` post is what a web page may send cross-site without a CORS
   preflight; a JSON type forces one, and the coordinator grants none;
2. the body must be UTF-8 JSON without a key given twice in one object: in
   ``{"correct": 1, "correct": 8}`` parsers disagree on which wins;
3. the parsed value must match the endpoint's strict model (``rest/models.py``).

Step 2 is ``json.loads`` with a pairs hook, then pydantic validates the Python value: slower
than pydantic's own ``validate_json`` (unmeasured in the repo's benchmarks), which cannot see
repeated keys. O(body size).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from cdas.core.errors import InvalidArgumentError, UnsupportedMediaTypeError
from cdas.core.results import unknown_field
from cdas.core.validate import describe

B = TypeVar("B")

JSON = "application/json"
OCTETS = "application/octet-stream"


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``; ``""`` when absent."""
    return (content_type or "").partition(";")[0].strip().lower()


def require_media_type(content_type: str | None, *accepted: str) -> None:
    """Raise the 415 unless the request's Content-Type is one of ``accepted`` (``JSON`` also
    admits any ``application/*+json``)."""
    got = media_type(content_type)
    if got in accepted or (
        JSON in accepted and got.startswith("application/") and got.endswith("+json")
    ):
        return
    raise UnsupportedMediaTypeError(
        f"Content-Type {got or '(none)'!r} is not accepted here; send {' or '.join(accepted)}",
        content_type=got,
        accepted=list(accepted),
    )


class _RepeatedKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKeyError(key)
            seen.add(key)
    return out


def parse_json(raw: bytes) -> Any:
    """The body as Python values; a named ``InvalidArgumentError`` when it is empty, not UTF-8,
    not JSON, repeats a key within one object, nests past the interpreter's recursion limit, or
    holds an integer of more than 4300 digits. ``NaN``/``Infinity`` parse as floats so that the
    core refuses them naming the field (``results[1].pass_rate is nan``)."""
    if not raw:
        raise InvalidArgumentError("request body is empty; send a JSON object", field="body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(
            f"request body is not UTF-8 (byte {exc.start}); send UTF-8 JSON", field="body"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except _RepeatedKeyError as exc:
        raise InvalidArgumentError(
            f"request body repeats the key {exc.key!r} in one object; give each key once",
            field=exc.key,
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field="body",
        ) from None
    except ValueError:  # an integer literal longer than Python reads (4300 digits)
        raise InvalidArgumentError(
            "request body holds an integer of more than "
            f"{sys.get_int_max_str_digits()} digits; no field of the contract takes one",
            field="body",
        ) from None
    except RecursionError:
        raise InvalidArgumentError(
            "request body nests arrays and objects too deeply to read; no field of the contract "
            "nests more than a few levels",
            field="body",
        ) from None


class JsonBody(Generic[B]):
    """An endpoint's JSON body: media type, parse and strict validation (the module's gate),
    and its entry in the OpenAPI document."""

    def __init__(self, model: type[B]) -> None:
        self.adapter: TypeAdapter[B] = TypeAdapter(model)
        self.name = model.__name__

    def parse(self, raw: bytes, content_type: str | None) -> B:
        require_media_type(content_type, JSON)
        value = parse_json(raw)
        try:
            return self.adapter.validate_python(value)
        except ValidationError as exc:
            errors = [dict(e, loc=("body", *e["loc"])) for e in exc.errors()]
            raise validation_error(errors) from None

    def openapi(self) -> dict[str, Any]:
        return {
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{self.name}"}}},
            }
        }

    def schemas(self) -> dict[str, Any]:
        schema = self.adapter.json_schema(ref_template="#/components/schemas/{model}")
        defs = schema.pop("$defs", {})
        return {self.name: schema, **defs}


_UNION_TAGS = frozenset({"CountPrompts", "IdPrompts", "typed-dict"})


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "results", 3, "total")`` -> ``results[3].total``."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "path", "query") else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or "[" in str(part) or str(part).startswith("function-"):
            continue  # pydantic's union-branch tags
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_error(errors: Sequence[Any]) -> InvalidArgumentError:
    """The first pydantic error as the contract's ``invalid_argument``, naming field and value."""
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid", "type": "invalid"}
    if first.get("type") == "json_invalid":
        ctx: Any = first.get("ctx") or {}
        return InvalidArgumentError(
            f"request body is not valid JSON: {ctx.get('error', first['msg'])}",
            field="body",
        )
    field = _field(tuple(first.get("loc", ())))
    if field == "body" and isinstance(first.get("input"), bytes | str):
        return InvalidArgumentError(
            "request body is not a JSON object (send JSON with Content-Type: application/json)",
            field="body",
        )
    if first.get("type") == "missing":
        return InvalidArgumentError(f"{field} is missing", field=field)
    if first.get("type") == "extra_forbidden":
        loc = tuple(first.get("loc", ()))
        if len(loc) == 4 and loc[1] == "results" and isinstance(loc[2], int):
            return unknown_field(loc[2], str(loc[3]))  # the library's words
        return InvalidArgumentError(f"{field} is not a known field", field=field)
    value = describe(first.get("input"))
    return InvalidArgumentError(
        f"{field} is {value}; {first['msg'][0].lower()}{first['msg'][1:]}",
        field=field,
        value=value,
        errors=len(errors),
    )
