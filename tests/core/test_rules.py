"""The rule-pack schema's new knobs: trend tests, sample size, bounded durations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from watchdog.core.rules import MAX_DURATION, parse_duration
from watchdog.yamlfile import FileError, load_rule_pack

RULE = """version: 1
rules:
  - name: feature
    signal: feature_up.*
    op: "=="
    threshold: 0
    severity: P1
    trend: {trend}
"""


def pack(tmp_path: Path, trend: str) -> Path:
    path = tmp_path / "pack.yaml"
    path.write_text(RULE.replace("{trend}", trend))
    return path


class TestTrendKnobs:
    def test_min_delta_is_required(self, tmp_path: Path) -> None:
        """A trend without a practical minimum is refused, naming the knob and its unit."""
        with pytest.raises(FileError) as info:
            load_rule_pack(pack(tmp_path, "{signal: error_rate, window: 10m}"))
        text = "\n".join(str(p) for p in info.value.problems)
        assert "min_delta" in text
        assert "percentage point" in text
        assert ":8" in text or "line 8" in text  # names the line of the trend

    @pytest.mark.parametrize("old", ["min_change: 0.1", "min_slope: 0.0"])
    def test_old_relative_knobs_are_refused_with_the_new_names(
        self, tmp_path: Path, old: str
    ) -> None:
        """A pack written for the old slope test fails loudly rather than meaning something
        else: its min_change was a share of the level, min_delta is absolute."""
        with pytest.raises(FileError) as info:
            load_rule_pack(pack(tmp_path, f"{{signal: error_rate, min_delta: 0.01, {old}}}"))
        assert "min_delta" in "\n".join(str(p) for p in info.value.problems)

    def test_valid_trend(self, tmp_path: Path) -> None:
        trend_text = "{signal: error_rate, min_delta: 0.02, alpha: 0.005}"
        loaded = load_rule_pack(pack(tmp_path, trend_text))
        trend = loaded.rules[0].trend
        assert trend is not None
        assert (trend.min_delta, trend.alpha, trend.window) == (0.02, 0.005, timedelta(minutes=15))

    @pytest.mark.parametrize("bad", ["alpha: 0.7", "alpha: 0", "min_samples: 2", "min_delta: 0"])
    def test_out_of_range(self, tmp_path: Path, bad: str) -> None:
        with pytest.raises(FileError):
            load_rule_pack(pack(tmp_path, f"{{signal: error_rate, min_delta: 0.01, {bad}}}"))


class TestDurations:
    @pytest.mark.parametrize("text", ["999999999d", "367d", 1e308, 10**30, "8785h"])
    def test_absurd_durations_name_the_limit(self, text: object) -> None:
        """Too long is an error with the allowed range, never an OverflowError."""
        with pytest.raises(ValueError, match="at most 366d"):
            parse_duration(text)

    def test_the_limit_itself_is_fine(self) -> None:
        assert parse_duration("366d") == MAX_DURATION

    def test_long_strings_are_refused_quickly(self) -> None:
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration("1s" * 10_000)


class TestFlowchartFloors:
    @pytest.mark.parametrize(
        ("knob", "value", "says"),
        [
            ("blind_after", "0s", "flowchart.blind_after 0s is too short"),
            ("verify_timeout", "0s", "flowchart.verify_timeout 0s is too short"),
            ("budget_window", "10m", "shorter than cooldown"),
        ],
    )
    def test_degenerate_knobs_are_refused(
        self, tmp_path: Path, knob: str, value: str, says: str
    ) -> None:
        """0s blindness pages on every unknown; a budget window under the cooldown never
        counts a rollback: both are refused with the knob's name."""
        path = tmp_path / "pack.yaml"
        path.write_text(
            f"version: 1\nflowchart: {{{knob}: {value}}}\n"
            + RULE.split("\n", 1)[1].replace("    trend: {trend}\n", "")
        )
        with pytest.raises(FileError) as info:
            load_rule_pack(path)
        assert says in "\n".join(str(p) for p in info.value.problems)
