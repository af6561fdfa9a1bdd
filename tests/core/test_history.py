"""watchdog/core/state.py History: two arrays of doubles behave as the deque of tuples did."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from watchdog.core.state import COMPACT_AFTER, History

steps = st.lists(
    st.tuples(st.booleans(), st.floats(min_value=0, max_value=1e4), st.floats(-1, 1)),
    max_size=400,
)


@given(steps)
def test_same_as_a_deque_of_tuples(ops: list[tuple[bool, float, float]]) -> None:
    """Appending in time order and dropping from the front, in any mix, leaves the same
    samples, the same newest time and the same first-at-or-after answers as the deque."""
    history, model = History(), deque[tuple[float, float]]()
    t = 0.0
    for append, step, value in ops:
        if append:
            t += step / 100
            history.append(t, value)
            model.append((t, value))
        else:
            horizon = t - step / 100
            history.drop_before(horizon)
            while model and model[0][0] < horizon:
                model.popleft()
        assert list(history) == list(model)
        assert len(history) == len(model)
        assert history.last_time() == (model[-1][0] if model else 0.0)
        probe = t - step / 200
        assert history.first_at_or_after(probe) == next((x for x, _ in model if x >= probe), 0.0)


def test_a_long_run_keeps_only_the_window() -> None:
    """A day of 5 s samples through a 15-minute window: the arrays stay bounded."""
    history = History()
    for i in range(17_280):
        stamp = i * 5.0
        history.append(stamp, 0.001)
        history.drop_before(stamp - 900)
    assert len(history) == 181
    assert len(history._t) <= 2 * 181 + COMPACT_AFTER
    assert history.last_time() == 17_279 * 5.0
