"""An event's webhook payload: its docs/contract.md §2 fields, in the contract's order.

The payload of an event is the fields of its kind's list that the decoded event has,
with the event's values, in the list's order. Picking them one by one costs a lookup
per listed field and a growing dict (~15k instructions for an agent-state event, the
largest single cost of formatting it). But a producer sends every event with its keys
in the same order, so the work is planned once per *shape* (the decoded object's keys,
in order) and kept:

* keys already in the list's order, none extra: the decoded object is the payload;
* in order, with extra keys (an ``event_id``, fields of a newer platform release): a
  copy of the object (a block copy in C) without the extra keys;
* in another order: the listed fields picked one by one, as before.

Measured over the bench's agent-state events (callgrind, per event): 15.2k instructions
for the pick, ~1.5k for the planned copy (the shape tuple, its lookup, the copy and one
deletion).

A shape is the decoded object's keys as a tuple. At most :data:`PLANS_KEPT` shapes are
kept per field list: input with ever new key orders (no producer sends that) is planned
per event and costs what the pick costs.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["PLANS_KEPT", "Payload"]

#: Shapes planned and kept per field list; a further shape is planned per event.
PLANS_KEPT: Final = 256

#: A plan: the listed fields the shape has, in the list's order, and the shape's keys
#: to leave out of a copy (None: the shape's order differs; pick the fields one by one).
_Plan = tuple[tuple[str, ...], tuple[str, ...] | None]


class Payload:
    """One field list of docs/contract.md §2, and its plans by shape."""

    __slots__ = ("_listed", "_plans", "fields")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self._listed = frozenset(fields)
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def of(self, data: dict[str, Any]) -> dict[str, Any]:
        """The payload of the decoded event ``data``: its listed fields, in list order.

        May be ``data`` itself (never changed here): the caller only reads it."""
        shape = tuple(data)
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plan(shape)
        present, extra = plan
        if extra is None:
            return {name: data[name] for name in present}
        if not extra:
            return data
        payload = data.copy()
        for name in extra:
            del payload[name]
        return payload

    def _plan(self, shape: tuple[str, ...]) -> _Plan:
        keys = set(shape)
        present = tuple(name for name in self.fields if name in keys)
        listed = self._listed
        in_order = tuple(name for name in shape if name in listed) == present
        extra = tuple(name for name in shape if name not in listed) if in_order else None
        plan = (present, extra)
        if len(self._plans) < PLANS_KEPT:
            self._plans[shape] = plan
        return plan
