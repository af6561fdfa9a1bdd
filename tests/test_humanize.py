"""Times as on-call reads them: relative and absolute, in UTC, never raw ISO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from watchdog.humanize import clock, parse, relative, span, times_in

NOW = datetime(2026, 8, 20, 9, 15, 40, 123456, tzinfo=UTC)


class TestRelative:
    @pytest.mark.parametrize(
        ("delta", "text"),
        [
            (timedelta(minutes=-3), "3 min ago (09:12:40 UTC)"),
            (timedelta(seconds=-45), "45 s ago (09:14:55 UTC)"),
            (timedelta(seconds=45), "in 45 s (09:16:25 UTC)"),
            (timedelta(minutes=2, seconds=30), "in 2 min 30 s (09:18:10 UTC)"),
            (timedelta(hours=-2, minutes=-5), "2 h 05 min ago (07:10:40 UTC)"),
            (timedelta(milliseconds=300), "now (09:15:40 UTC)"),
        ],
    )
    def test_words_and_clock(self, delta: timedelta, text: str) -> None:
        """Relative words first, the UTC clock time after, no microseconds."""
        assert relative(NOW + delta, NOW) == text

    def test_another_day_carries_its_date(self) -> None:
        """A time on another UTC day says which day."""
        assert relative(NOW - timedelta(days=2), NOW) == "2 d 0 h ago (2026-08-18 09:15:40 UTC)"

    def test_offsets_and_naive_times_are_read_as_utc(self) -> None:
        """A time with another offset is shown in UTC; a naive one is taken as UTC."""
        plus2 = timezone(timedelta(hours=2))
        assert clock(datetime(2026, 8, 20, 11, 0, tzinfo=plus2), NOW) == "09:00:00 UTC"
        assert clock(datetime(2026, 8, 20, 9, 0), NOW) == "09:00:00 UTC"


class TestSpanAndParse:
    @pytest.mark.parametrize(
        ("seconds", "text"),
        [(0, "0 s"), (59, "59 s"), (60, "1 min"), (150, "2 min 30 s"), (900, "15 min"),
         (7200, "2 h 00 min"), (90000, "1 d 1 h")],
    )  # fmt: skip
    def test_span(self, seconds: int, text: str) -> None:
        assert span(timedelta(seconds=seconds)) == text

    def test_parse_round_trips_the_api_times(self) -> None:
        """The JSON API's ISO strings come back as aware UTC times; junk is None."""
        assert parse(NOW.isoformat()) == NOW
        assert parse("2026-08-20T09:15:40Z") == NOW.replace(microsecond=0)
        assert parse("soon") is None
        assert parse(None) is None


class TestTimesIn:
    def test_raw_stamps_in_a_reason_read_as_relative_times(self) -> None:
        """The engine's reasons quote ISO stamps with microseconds; the page reads them."""
        text = "rolled back at 2026-08-20T09:12:40.100000+00:00; resolves at 2026-08-20T09:20:40Z"
        assert times_in(text, NOW) == (
            "rolled back 3 min ago (09:12:40 UTC); resolves in 5 min (09:20:40 UTC)"
        )
        assert times_in("no time here: 2026-08-20", NOW) == "no time here: 2026-08-20"
