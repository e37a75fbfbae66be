"""Event pages validated against event-model's schema with a faster ``items`` keyword.

bluesky validates every event page it composes from a device's ``collect_pages`` against
event-model's JSON schema (``compose_event_page(validate=True)``; no way to turn it off). The
schema gives each column of ``data`` and ``timestamps`` the item schema ``{}`` and ``time``,
``seq_num`` and ``uid`` the item schemas ``{"type": "number"}``, ``{"type": "integer"}`` and
``{"type": "string"}``; jsonschema checks each item by building a validator for it. For the
paper's protocol (10,700 points, 17 arrays each) that was most of a second of CPU per run.

:func:`install` gives event-model's event-page validator (same class, same type checker: its own
array check, same schema) an ``items`` keyword that settles those two cases at once: an empty
item schema accepts every item, and an item schema that is only ``type`` is checked with the
validator's own type check, item after item (at once when every item is a plain ``float`` or
``int`` for ``number``, ``int`` for ``integer``, ``str`` for ``string``: items that check accepts).
Anything else, and any array with an item of the wrong type, goes to jsonschema's own ``items``,
so the same pages pass and the same pages fail with the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

#: event-model's own event-page validator, once :func:`install` has replaced it.
replaced: Any = None


#: Python types whose every instance is of the JSON type (bool excluded: ``type(True)`` is bool):
#: an array of only these needs no per-item type check.
_PLAIN: dict[str, tuple[type, ...]] = {"number": (float, int), "integer": (int,), "string": (str,)}


def _all_plain(instance: Any, types: tuple[type, ...] | None) -> bool:
    return types is not None and all(type(item) in types for item in instance)


def _items_keyword(original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def items(validator: Any, item_schema: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if isinstance(item_schema, dict) and "prefixItems" not in schema:
            if not item_schema:
                return  # {}: every item is valid
            kind = item_schema.get("type")
            if (
                item_schema.keys() == {"type"}
                and isinstance(kind, str)
                and validator.is_type(instance, "array")
                and (
                    _all_plain(instance, _PLAIN.get(kind))
                    or all(validator.is_type(item, kind) for item in instance)
                )
            ):
                return
        yield from original(validator, item_schema, instance, schema)

    return items


def install() -> None:
    """Use the faster ``items`` for event pages (idempotent, process-wide)."""
    global replaced
    if replaced is not None:
        return
    from event_model import DocumentNames, schema_validators
    from jsonschema.validators import extend

    validator = schema_validators[DocumentNames.event_page]
    base = type(validator)
    faster = extend(base, validators={"items": _items_keyword(base.VALIDATORS["items"])})
    schema_validators[DocumentNames.event_page] = faster(schema=validator.schema)
    replaced = validator
