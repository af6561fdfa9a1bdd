"""Tests for deploy/prometheus: the real promtool checks the alert rules and runs their unit
tests, and every alert the watchdog is watched with is present."""

from __future__ import annotations

import pytest

from tests.deploy.support import DEPLOY, load_yaml, run
from tests.tools import require_tool

RULES = DEPLOY / "prometheus" / "watchdog-alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "watchdog-alerts.test.yaml"


def alerts() -> dict[str, dict[str, object]]:
    return {r["alert"]: r for g in load_yaml(RULES)["groups"] for r in g["rules"]}


@pytest.mark.tool
class TestPromtool:
    def test_rules_pass_promtool_check(self) -> None:
        """`promtool check rules` accepts the alert file."""
        promtool = require_tool("PROMTOOL", "promtool")
        result = run([promtool, "check", "rules", str(RULES)])
        assert result.returncode == 0, result.stdout + result.stderr

    def test_rule_unit_tests_pass(self) -> None:
        """`promtool test rules` passes: each alert fires on its failure and not otherwise."""
        promtool = require_tool("PROMTOOL", "promtool")
        result = run([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


class TestCoverage:
    def test_required_alerts_exist(self) -> None:
        """Down, blind, rollback failed, dead man's switch, lag and source errors are alerted on."""
        assert set(alerts()) >= {
            "WatchdogDown",
            "WatchdogBlind",
            "WatchdogRollbackFailed",
            "WatchdogDeadMansSwitch",
            "WatchdogSchedulingLagHigh",
            "WatchdogSourceErrors",
            "WatchdogNotLeaderAnywhere",
        }

    def test_every_alert_has_a_unit_test(self) -> None:
        """Each alert is exercised by at least one promtool unit test case that expects it."""
        tested = {
            case["alertname"]
            for test in load_yaml(RULE_TESTS)["tests"]
            for case in test["alert_rule_test"]
            if case.get("exp_alerts")
        }
        assert set(alerts()) <= tested

    def test_every_alert_has_severity_and_summary(self) -> None:
        """Each alert routes by a known severity and explains itself."""
        for name, rule in alerts().items():
            labels = rule["labels"]
            annotations = rule["annotations"]
            assert isinstance(labels, dict)
            assert isinstance(annotations, dict)
            assert labels["severity"] in {"critical", "warning", "info"}, name
            assert annotations["summary"], name
            assert annotations["description"], name

    def test_losing_the_watchdog_pages_critically(self) -> None:
        """A dead or stuck watchdog and a failed rollback are critical, not warnings."""
        rules = alerts()
        for name in ("WatchdogDown", "WatchdogDeadMansSwitch", "WatchdogRollbackFailed"):
            labels = rules[name]["labels"]
            assert isinstance(labels, dict)
            assert labels["severity"] == "critical"
