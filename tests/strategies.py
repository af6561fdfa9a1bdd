"""Hypothesis strategies shared by the fuzz tests: JSON a provider or a client might send."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st


def json_scalars(words: Sequence[str]) -> st.SearchStrategy[Any]:
    """Any JSON scalar, integers past float range and NaN/±Inf included, and ``words``
    (the values the real answers use, so drawn documents come close to their shapes)."""
    return (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**1100), max_value=2**1100)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.sampled_from(list(words))
        | st.text(max_size=12)
    )


def json_documents(keys: Sequence[str], words: Sequence[str]) -> st.SearchStrategy[Any]:
    """Nested JSON whose object keys are mostly ``keys`` (the field names real answers use)."""
    return st.recursive(
        json_scalars(words),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(list(keys)) | st.text(max_size=6), inner, max_size=6)
        ),
        max_leaves=30,
    )
