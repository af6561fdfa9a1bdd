"""``watchdog replay``: the DESIGN §7 contract, line for line."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from tests.core.helpers import DEFAULT_PACK
from watchdog.cli import main
from watchdog.replay import TraceError, replay

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(lines: list[dict[str, object] | str]) -> list[dict[str, object]]:
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    out = io.StringIO()
    replay(text, DEFAULT_PACK, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def health(t: float, v: float | None, target: str = "web") -> dict[str, object]:
    return {"t": t, "target": target, "signal": "health_up", "value": v}


DEPLOY = {"t": 0, "target": "web", "event": "deploy", "deployment": "dpl_2"}


class TestContract:
    def test_example_trace_reproduces_expected_output(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The shipped example trace prints exactly its shipped expected output."""
        assert main(["replay", str(EXAMPLES / "bad-deploy.jsonl")]) == 0
        expected = (EXAMPLES / "bad-deploy.expected.jsonl").read_text()
        assert capsys.readouterr().out == expected

    def test_canary_example_aborts_the_rolling_release(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The shipped rolling-release trace (release-scoped samples, a rollout event)
        prints its shipped expected output: one abort scoped to the canary."""
        assert main(["replay", str(EXAMPLES / "canary.jsonl")]) == 0
        out = capsys.readouterr().out
        assert out == (EXAMPLES / "canary.expected.jsonl").read_text()
        assert json.loads(out)["scope"] == "canary"

    def test_output_shape(self) -> None:
        """Each change prints t, target, action, severity, rule and reason, in that order, then
        the deployment it concerns (the one a rollback blames)."""
        out = run([DEPLOY, health(10, 0), health(20, 0), health(30, 0)])
        assert len(out) == 1
        assert list(out[0]) == ["t", "target", "action", "severity", "rule", "reason", "deployment"]
        assert out[0]["deployment"] == "dpl_2"
        assert "dpl_2" in str(out[0]["reason"])
        assert out[0]["t"] == 30.0
        assert (out[0]["action"], out[0]["severity"], out[0]["rule"]) == (
            "rollback",
            "P0",
            "system-down",
        )

    def test_only_changes_are_printed(self) -> None:
        """A steady state prints nothing; each change prints once per target."""
        lines: list[dict[str, object] | str] = [DEPLOY]
        for t in range(10, 200, 10):
            lines += [health(t, 1), health(t, 1, "api")]
        assert run(lines) == []

    def test_targets_are_independent(self) -> None:
        """One target's outage does not change another target's decision."""
        lines: list[dict[str, object] | str] = [DEPLOY]
        for t in (10, 20, 30):
            lines += [health(t, 0), health(t, 1, "api")]
        out = run(lines)
        assert [o["target"] for o in out] == ["web"]

    def test_rfc3339_time_in_and_out(self) -> None:
        """RFC 3339 times are accepted and printed back as RFC 3339."""
        lines: list[dict[str, object] | str] = [
            {"t": "2026-08-20T10:00:00Z", "target": "web", "event": "deploy", "deployment": "d"},
            {
                "t": "2026-08-20T10:00:10Z",
                "target": "web",
                "signal": "payment_failures",
                "value": 2,
            },
        ]
        assert run(lines)[0]["t"] == "2026-08-20T10:00:10Z"

    def test_null_value_is_unknown(self) -> None:
        """null values are unknown: they never roll back."""
        lines: list[dict[str, object] | str] = [DEPLOY] + [
            health(t, None) for t in range(10, 100, 10)
        ]
        assert all(o["action"] != "rollback" for o in run(lines))

    def test_ack_event_holds_fix_forward(self) -> None:
        """An ack event in the trace holds a P1 feature outage past its window."""
        feature = [
            {"t": t, "target": "web", "signal": "feature_up.checkout", "value": 0}
            for t in range(10, 1190, 30)
        ]
        out = run([DEPLOY, *feature])
        assert any(o["action"] == "rollback" for o in out)
        ack = {"t": 300, "target": "web", "event": "ack", "decision": "fix_forward"}
        held = run(
            [
                DEPLOY,
                *[f for f in feature if f["t"] < 300],
                ack,
                *[f for f in feature if f["t"] >= 300],
            ]
        )
        assert held[-1]["action"] == "page"
        assert all(o["action"] != "rollback" for o in held)

    def test_blank_lines_are_skipped(self) -> None:
        """Blank lines are not errors."""
        assert run([DEPLOY, "", "   ", health(10, 1)]) == []


class TestMalformed:
    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("{not json", "not valid JSON"),
            ('["a"]', "must be a JSON object"),
            ('{"target": "web", "signal": "x", "value": 1}', "missing 't'"),
            ('{"t": "yesterday", "target": "web", "signal": "x", "value": 1}', "not RFC 3339"),
            (
                '{"t": "2026-08-20T10:00:00", "target": "web", "signal": "x", "value": 1}',
                "no timezone",
            ),
            ('{"t": 5, "signal": "x", "value": 1}', "'target'"),
            ('{"t": 5, "target": "web", "signal": "x"}', "missing 'value'"),
            ('{"t": 5, "target": "web", "signal": "x", "value": [1]}', "'value' must be"),
            ('{"t": 5, "target": "web", "event": "explode"}', "unknown event 'explode'"),
            ('{"t": 5, "target": "web", "event": "deploy"}', "'deployment'"),
            (
                '{"t": 5, "target": "web", "event": "ack", "decision": "maybe"}',
                "'fix_forward' or 'rollback'",
            ),
            ('{"t": 5, "target": "web", "event": "hold"}', "needs 'duration'"),
            ('{"t": 5, "target": "web"}', "either 'signal' and 'value', or 'event'"),
            ('{"t": 1, "target": "web", "signal": "x", "value": 1}', "goes back in time"),
            # times out of range: epoch milliseconds, a year past 9999, absurd durations
            ('{"t": 1767225600000, "target": "web", "signal": "x", "value": 1}', "milliseconds"),
            ('{"t": "10000-01-01T00:00:00Z", "target": "web", "signal": "x", "value": 1}', "RFC"),
            ('{"t": 1e300, "target": "web", "signal": "x", "value": 1}', "out of range"),
            ('{"t": -1e12, "target": "web", "signal": "x", "value": 1}', "out of range"),
            (
                '{"t": 5, "target": "web", "event": "hold", "duration": "999999999d"}',
                "at most 366d",
            ),
            ('{"t": 5, "target": "web", "event": "hold", "duration": 1e308}', "at most 366d"),
            (
                '{"t": 5, "target": "web", "event": "ack", "window": "99999999999999h"}',
                "at most 366d",
            ),
            ('{"t": 5, "target": "web", "event": "hold", "until": 1e15}', "out of range"),
            ('{"t": 5, "target": "web", "event": ["deploy"]}', "unknown event"),
            ('{"t": 5, "target": "web", "event": "ack", "decision": ["x"]}', "'fix_forward'"),
            ('{"t": 5, "target": "web", "event": "declare", "severity": {}}', "'severity'"),
            (
                '{"t": 5, "target": "web", "signal": "error_rate", "value": "high"}',
                "only 'version'",
            ),
            (
                '{"t": 5, "target": "web", "signal": "x", "value": 1, "requests": -3}',
                "whole number",
            ),
            (
                '{"t": 5, "target": "web", "event": "deploy", "deployment": "d", "version": 7}',
                "'version'",
            ),
        ],
    )
    def test_malformed_line_names_line_and_problem(self, line: str, message: str) -> None:
        """A malformed line stops the replay with its line number and what is wrong."""
        first = json.dumps({"t": 2, "target": "web", "signal": "x", "value": 1})
        with pytest.raises(TraceError) as info:
            run([first, line])
        assert info.value.line == 2
        assert message in str(info.value)

    def test_cli_exit_code_and_message(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The CLI exits 1 and prints file and line, without a traceback."""
        trace = tmp_path / "t.jsonl"
        trace.write_text(json.dumps(DEPLOY) + "\n{oops\n")
        assert main(["replay", str(trace)]) == 1
        err = capsys.readouterr().err
        assert f"{trace}: line 2: not valid JSON" in err
        assert "Traceback" not in err

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"", "empty"),
            (b"\n\n  \n", "empty"),
            (
                b'{"t": 0, "target": "web", "signal": "x", "value": 1}\n\xff\xfe{}\n',
                "line 2: not UTF-8",
            ),
        ],
    )
    def test_unusable_files(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
    ) -> None:
        """Empty traces and bad UTF-8 exit 1 with the line and the problem, no traceback."""
        trace = tmp_path / "t.jsonl"
        trace.write_bytes(content)
        assert main(["replay", str(trace)]) == 1
        err = capsys.readouterr().err
        assert message in err
        assert "Traceback" not in err

    def test_directory_and_fifo(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A directory or a FIFO is not a trace: one line each, never a hang."""
        assert main(["replay", str(tmp_path)]) == 1
        assert "is a directory" in capsys.readouterr().err
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        assert main(["replay", str(fifo)]) == 1
        assert "not a regular file" in capsys.readouterr().err

    def test_missing_trace_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A trace that does not exist is a one-line error."""
        assert main(["replay", str(tmp_path / "none.jsonl")]) == 1
        err = capsys.readouterr().err
        assert "cannot read" in err
        assert "No such file" in err


class TestRollingReleaseTrace:
    def test_bad_canary_is_aborted_and_said_so(self) -> None:
        """A trace with a rolling release and release-scoped samples: the canary's error rate
        is worse than its base's, three evaluations running, and replay prints the abort
        (a rollback scoped to the canary) once."""
        lines: list[dict[str, object] | str] = [
            DEPLOY,
            {"t": 1, "target": "web", "event": "deploy", "deployment": "dpl_old"},
            {
                "t": 5,
                "target": "web",
                "event": "rollout",
                "canary": "dpl_new",
                "base": "dpl_old",
                "stage": 0,
                "percent": 10,
                "approval": True,
                "next_stage": 1,
            },
        ]
        for t in (10, 20, 30):
            lines += [
                {
                    "t": t,
                    "target": "web",
                    "signal": "error_rate",
                    "value": 0.004,
                    "requests": 18000,
                    "deployment": "dpl_old",
                },
                {
                    "t": t,
                    "target": "web",
                    "signal": "error_rate",
                    "value": 0.09,
                    "requests": 2000,
                    "deployment": "dpl_new",
                },
            ]
        out = run(lines)
        assert [(o["action"], o["severity"], o["rule"]) for o in out] == [
            ("rollback", "P1", "canary-error-rate")
        ]
        assert out[0]["scope"] == "canary"
        assert out[0]["deployment"] == "dpl_new"

    def test_bad_fields_are_named(self) -> None:
        with pytest.raises(TraceError, match="'percent'"):
            run([{"t": 1, "target": "web", "event": "rollout", "canary": "c", "percent": 120}])
        with pytest.raises(TraceError, match="'state'"):
            run([{"t": 1, "target": "web", "event": "rollout", "state": "paused"}])
        with pytest.raises(TraceError, match="'deployment'"):
            run([{"t": 1, "target": "web", "signal": "error_rate", "value": 0.1, "deployment": 3}])
