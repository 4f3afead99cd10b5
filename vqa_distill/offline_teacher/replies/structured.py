"""Structured outputs: a ``json_schema`` response format is answered with a valid instance of its schema.

A small generator over JSON-schema types (object with properties and required, array with
minItems/maxItems, string with enum and lengths, integer and number with minimum/maximum, boolean,
null, const, anyOf/oneOf/allOf, ``$ref`` into ``$defs``) makes a valid instance of any schema. A
``Filler`` may supply the value of any node instead (the questions and the judge's scores come from
``offline_teacher.questions``). A strict schema is checked as the API checks it: every object closed
(``additionalProperties: false``) and every property required; otherwise the request gets a 400.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vqa_distill.offline_teacher.rules.schema import ChatRequest

DEFAULT_ARRAY_ITEMS = 2  # items in an array whose schema allows any number
SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
FORMAT_EXAMPLES = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "someone@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
}

NOTHING: Any = object()  # what a Filler returns to let the generator make the value
Path = tuple[str | int, ...]  # where a node sits: property names and array positions from the root
Filler = Callable[[Path, dict[str, Any]], Any]


@dataclass(frozen=True)
class ResponseFormat:
    """A request's ``response_format``: ``text``, ``json_object`` or ``json_schema`` with its schema."""

    type: str = "text"
    name: str = ""
    schema: dict[str, Any] | None = None
    strict: bool = False


def response_format_of(chat: ChatRequest) -> ResponseFormat | str:
    """Return the request's response format, or the API's 400 message when it is malformed."""
    raw = (chat.model_extra or {}).get("response_format")
    if raw is None:
        return ResponseFormat()
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in ("text", "json_object"):
        return ResponseFormat(type=kind)
    if kind != "json_schema":
        return f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object' and 'json_schema'."
    spec = raw.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not SCHEMA_NAME.match(spec["name"]):
        return "Invalid 'response_format.json_schema.name': a string of 1-64 letters, digits, '_' or '-' is required."
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        return f"Invalid schema for response_format '{spec['name']}': the schema must be a JSON object."
    strict = spec.get("strict") is True
    problem = strict_problem(schema) if strict else None
    if problem:
        return f"Invalid schema for response_format '{spec['name']}': {problem}"
    return ResponseFormat(type="json_schema", name=spec["name"], schema=schema, strict=strict)


def strict_problem(schema: dict[str, Any], context: Path = ()) -> str | None:
    """Return why a strict schema would be refused (an object not closed, a property not required), else None."""
    if not context and _type_of(schema) != "object":
        return "the root of a strict schema must be an object."
    if _type_of(schema) == "object":
        if schema.get("additionalProperties") is not False:
            return f"In context={context}, 'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties", {})
        missing = [name for name in properties if name not in schema.get("required", [])]
        if missing:
            return (
                f"In context={context}, 'required' is required to be supplied and to be an array including every "
                f"key in properties. Missing '{missing[0]}'."
            )
    children: list[tuple[Path, Any]] = [
        (("properties", name), sub) for name, sub in schema.get("properties", {}).items()
    ]
    children += [(("items",), schema["items"])] if isinstance(schema.get("items"), dict) else []
    for keyword in ("anyOf", "oneOf", "allOf"):
        children += [((keyword, i), sub) for i, sub in enumerate(schema.get(keyword, []))]
    for keyword in ("$defs", "definitions"):
        children += [((keyword, name), sub) for name, sub in schema.get(keyword, {}).items()]
    for where, sub in children:
        problem = strict_problem(sub, context + where) if isinstance(sub, dict) and "$ref" not in sub else None
        if problem:
            return problem
    return None


def instance_of(schema: dict[str, Any], fill: Filler | None = None) -> Any:
    """Return a value that ``schema`` accepts; ``fill`` may supply any node's value first."""
    return _Generator(schema, fill).make(schema, ())


def array_length(node: dict[str, Any], wanted: int = DEFAULT_ARRAY_ITEMS) -> int:
    """Return ``wanted`` brought within the node's minItems/maxItems."""
    low = int(node.get("minItems", 0))
    high = node.get("maxItems")
    return max(low, min(wanted, int(high))) if high is not None else max(low, wanted)


def _type_of(node: dict[str, Any]) -> str | None:
    """Return the node's type (the first non-null of a list), inferred from its keywords when unstated."""
    kind = node.get("type")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), "null" if kind else None)
    if kind is not None:
        return str(kind)
    if "properties" in node:
        return "object"
    if "items" in node or "prefixItems" in node:
        return "array"
    return None


class _Generator:
    """Walks one schema, resolving ``$ref`` against its root."""

    def __init__(self, root: dict[str, Any], fill: Filler | None):
        self.root = root
        self.fill = fill

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
            target: Any = self.root
            for part in node["$ref"][2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def make(self, node: Any, path: Path) -> Any:
        if not isinstance(node, dict):  # ``true`` or a missing schema: anything goes
            return ""
        node = self.resolve(node)
        if self.fill is not None:
            value = self.fill(path, node)
            if value is not NOTHING:
                return value
        if "const" in node:
            return node["const"]
        if node.get("enum"):
            return node["enum"][_position(path) % len(node["enum"])]
        for keyword in ("anyOf", "oneOf"):
            options = node.get(keyword)
            if options:
                typed = [o for o in options if _type_of(self.resolve(o)) != "null"] or options
                return self.make(typed[0], path)
        if node.get("allOf"):
            merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                merged.update(self.resolve(part))
            return self.make(merged, path)
        maker = getattr(self, f"_{_type_of(node)}", None)
        return maker(node, path) if maker else ""

    def _object(self, node: dict[str, Any], path: Path) -> dict[str, Any]:
        properties = dict(node.get("properties", {}))
        for name in node.get("required", []):
            properties.setdefault(name, {"type": "string"})
        return {name: self.make(sub, (*path, name)) for name, sub in properties.items()}

    def _array(self, node: dict[str, Any], path: Path) -> list[Any]:
        prefix = list(node.get("prefixItems", []))
        count = array_length(node, max(DEFAULT_ARRAY_ITEMS, len(prefix)))
        items = node.get("items", {})
        if items is False:  # nothing past the prefix
            count = min(count, len(prefix))
        return [self.make(prefix[i] if i < len(prefix) else items, (*path, i)) for i in range(count)]

    def _string(self, node: dict[str, Any], path: Path) -> str:
        if node.get("format") in FORMAT_EXAMPLES:
            return FORMAT_EXAMPLES[node["format"]]
        label = next((str(p) for p in reversed(path) if isinstance(p, str)), "value")
        text = f"{label} {_position(path) + 1}"
        low, high = int(node.get("minLength", 0)), node.get("maxLength")
        text = text.ljust(low, "x")
        return text[: int(high)] if high is not None else text

    def _integer(self, node: dict[str, Any], path: Path) -> int:
        low = _bound(node, lower=True, integer=True)
        high = _bound(node, lower=False, integer=True)
        value = (int(low) if low is not None else min(0, int(high) if high is not None else 0)) + _position(path)
        step = node.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = math.ceil(value / step) * step
        return min(value, int(high)) if high is not None else value

    def _number(self, node: dict[str, Any], path: Path) -> float:
        low = _bound(node, lower=True, integer=False)
        high = _bound(node, lower=False, integer=False)
        if low is not None and high is not None:
            return (low + high) / 2
        return low if low is not None else (high if high is not None else 0.5)

    def _boolean(self, node: dict[str, Any], path: Path) -> bool:
        return True

    def _null(self, node: dict[str, Any], path: Path) -> None:
        return None


def _bound(node: dict[str, Any], *, lower: bool, integer: bool) -> float | None:
    """Return the tightest lower (or upper) bound of ``node`` as a value it accepts, else None.

    An exclusive bound moves one unit inwards for integers and half a unit for numbers.
    """
    inclusive, exclusive = ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    inwards = 1 if lower else -1
    found: list[float] = []
    if isinstance(node.get(inclusive), int | float):
        value = float(node[inclusive])
        found.append((math.ceil(value) if lower else math.floor(value)) if integer else value)
    if isinstance(node.get(exclusive), int | float):
        value = float(node[exclusive])
        if integer:
            found.append(math.floor(value) + 1 if lower else math.ceil(value) - 1)
        else:
            found.append(value + inwards * 0.5)
    if not found:
        return None
    return max(found) if lower else min(found)


def _position(path: Path) -> int:
    """Return the node's position in its array (0 outside arrays), so array items differ."""
    return next((p for p in reversed(path) if isinstance(p, int)), 0)
