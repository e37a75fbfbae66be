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

Single events (a heating's temperature log, one per minute for days) go through
:class:`FastEventValidator`: event-model's event validator behind a check, in plain Python, of
what its schema asks (the keys, required and allowed, and the types of ``uid``, ``descriptor``,
``seq_num``, ``time``, ``data``, ``timestamps``, ``filled``, each by the validator's own type
checker). An event that passes the check is one the schema accepts, and is accepted at once
(jsonschema's ``unevaluatedProperties`` took most of a third of a millisecond per event); any
other goes to the schema, so the same events fail with the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

#: event-model's own event-page validator, once :func:`install` has replaced it.
replaced: Any = None
#: event-model's own event validator, once :func:`install` has put :class:`FastEventValidator` before it.
replaced_event: Any = None

_EVENT_REQUIRED = frozenset({"uid", "descriptor", "seq_num", "time", "data", "timestamps"})
_EVENT_ALLOWED = _EVENT_REQUIRED | {"filled"}


class FastEventValidator:
    """Event-model's event validator behind a check of what its schema asks (see the module).

    Parameters
    ----------
    validator : jsonschema validator
        Event-model's own; it answers every event the check does not accept, and every
        attribute this class does not define.
    """

    def __init__(self, validator: Any) -> None:
        self.validator = validator

    def __getattr__(self, name: str) -> Any:
        return getattr(self.validator, name)

    def accepts(self, event: Any) -> bool:
        """True only for an event the schema accepts (False: let the schema judge it)."""
        is_type = self.validator.is_type
        if not isinstance(event, dict):
            return False
        keys = event.keys()
        if not (keys >= _EVENT_REQUIRED and keys <= _EVENT_ALLOWED):
            return False
        if not (
            is_type(event["uid"], "string")
            and is_type(event["descriptor"], "string")
            and is_type(event["seq_num"], "integer")
            and is_type(event["time"], "number")
            and is_type(event["data"], "object")
            and is_type(event["timestamps"], "object")
        ):
            return False
        filled = event.get("filled", {})
        return is_type(filled, "object") and all(
            is_type(value, "boolean") or is_type(value, "string") for value in filled.values()
        )

    def iter_errors(self, event: Any) -> Iterator[Any]:
        if self.accepts(event):
            return iter(())
        return self.validator.iter_errors(event)  # type: ignore[no-any-return]

    def validate(self, event: Any) -> None:
        if not self.accepts(event):
            self.validator.validate(event)

    def is_valid(self, event: Any) -> bool:
        return self.accepts(event) or bool(self.validator.is_valid(event))


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
    """Use the faster ``items`` for event pages and :class:`FastEventValidator` for events
    (idempotent, process-wide)."""
    global replaced, replaced_event
    if replaced is not None:
        return
    from event_model import DocumentNames, schema_validators
    from jsonschema.validators import extend

    replaced_event = schema_validators[DocumentNames.event]
    schema_validators[DocumentNames.event] = FastEventValidator(replaced_event)

    validator = schema_validators[DocumentNames.event_page]
    base = type(validator)
    faster = extend(base, validators={"items": _items_keyword(base.VALIDATORS["items"])})
    schema_validators[DocumentNames.event_page] = faster(schema=validator.schema)
    replaced = validator
