"""An event's webhook payload: its docs/contract.md §2 fields, in the contract's order.

The payload of an event is the fields of its kind's list that the decoded event has,
with the event's values, in the list's order. Picking them one by one costs a lookup
per listed field and a growing dict (~15k instructions for an agent-state event, the
largest single cost of formatting it). But a producer sends every event with its keys
in the same order, so the work is planned once per *shape* (the decoded object's keys,
in order) and kept, as a :class:`Plan`:

* keys already in the list's order, none extra: the decoded object is the payload;
* in order, with extra keys (an ``event_id``, fields of a newer platform release): a
  copy of the object (a block copy in C) without the extra keys;
* in another order: the listed fields picked one by one.

Measured over the bench's agent-state events (callgrind, per event): 15.2k instructions
for the pick, ~6.6k for the planned copy (the shape tuple 2.3k, its lookup, the copy
1.5k, one deletion). The URL-encoded query is made from the same plan
(:mod:`stream_wfm.delivery.form`).

At most :data:`PLANS_KEPT` shapes are kept per field list, of at most
:data:`PLAN_MAX_KEYS` keys each: input with ever new key orders (no producer sends
that) is planned per event and costs what the pick costs.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["PLANS_KEPT", "PLAN_MAX_KEYS", "Payload", "Plan"]

#: Shapes planned and kept per field list; a further shape is planned per event.
PLANS_KEPT: Final = 256
#: A shape of more keys than this is planned per event (bounds what the plans hold).
PLAN_MAX_KEYS: Final = 64


class Plan:
    """How to take the payload out of decoded events of one shape."""

    __slots__ = ("extra", "form", "present")

    def __init__(self, present: tuple[str, ...], extra: tuple[str, ...] | None) -> None:
        #: The listed fields the shape has, in the list's order.
        self.present = present
        #: The shape's keys to leave out of a copy; None: the shape's order differs from
        #: the list's, so the fields are picked one by one.
        self.extra = extra
        #: The URL-encoded query's precomputed parts for :attr:`present`, made by
        #: :mod:`stream_wfm.delivery.form` the first time it encodes this shape.
        self.form: Any = None


class Payload:
    """One field list of docs/contract.md §2, and its plans by shape."""

    __slots__ = ("_listed", "_plans", "fields")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self._listed = frozenset(fields)
        self._plans: dict[tuple[str, ...], Plan] = {}

    def plan(self, data: dict[str, Any]) -> Plan:
        """The plan of the decoded event ``data``'s shape."""
        shape = tuple(data)
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plan(shape)
        return plan

    def of(self, data: dict[str, Any]) -> dict[str, Any]:
        """The payload of the decoded event ``data``: its listed fields, in list order.

        May be ``data`` itself (never changed here): the caller only reads it."""
        shape = tuple(data)  # plan(data), inline (once per JSON event)
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plan(shape)
        extra = plan.extra
        if extra is None:
            return {name: data[name] for name in plan.present}
        if not extra:
            return data
        payload = data.copy()
        for name in extra:
            del payload[name]
        return payload

    def _plan(self, shape: tuple[str, ...]) -> Plan:
        keys = set(shape)
        present = tuple(name for name in self.fields if name in keys)
        listed = self._listed
        in_order = tuple(name for name in shape if name in listed) == present
        extra = tuple(name for name in shape if name not in listed) if in_order else None
        plan = Plan(present, extra)
        if len(self._plans) < PLANS_KEPT and len(shape) <= PLAN_MAX_KEYS:
            self._plans[shape] = plan
        return plan
