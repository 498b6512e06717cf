"""Hypothesis strategies shared by the unit tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Values orjson produces and accepts (RFC 8259: no NaN or infinities; 64-bit integers).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


def json_values(max_children: int, max_leaves: int) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values: scalars, arrays and objects nested up to ``max_leaves`` leaves."""
    return st.recursive(
        json_scalars,
        lambda children: (
            st.lists(children, max_size=max_children)
            | st.dictionaries(st.text(max_size=10), children, max_size=max_children)
        ),
        max_leaves=max_leaves,
    )
