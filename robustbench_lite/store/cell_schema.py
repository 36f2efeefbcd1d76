"""The JSON Schema of a cell file, derived from the typed record's own fields and types
(docs/cell-file.md is generated from it; a test keeps the page equal)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from robustbench_lite.store.cell_record import CellRecord, _Absent, _in_file


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a cell file, from the record's own types (docs/cell-file.md)."""

    def of(hint: Any) -> dict[str, Any]:
        args = [a for a in typing.get_args(hint) if a is not _Absent]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            kinds = [of(a) for a in args]
            return kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
        if dataclasses.is_dataclass(hint):
            return _object(hint)
        origin = typing.get_origin(hint)
        if origin is list:
            return {"type": "array", "items": of(args[0])}
        if origin is dict or hint is dict:
            return {"type": "object"}
        simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
        if hint is type(None):
            return {"type": "null"}
        return {"type": simple[hint]} if hint in simple else {}

    def _object(cls: Any) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        fields = [f for f in dataclasses.fields(cls) if _in_file(f)]
        return {
            "type": "object",
            "properties": {f.name: of(hints[f.name]) for f in fields},
            "required": [f.name for f in fields if f.default is dataclasses.MISSING],
            "additionalProperties": False,
        }

    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_object(CellRecord)}
