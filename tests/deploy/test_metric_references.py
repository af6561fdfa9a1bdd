"""Every metric the dashboard and the alert rules query is one watchdog/metrics.py defines.

The list of defined names comes from a fresh registry (``exposed_names``), never a copy, so
renaming a metric without updating deploy/ fails here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.deploy.support import DEPLOY, load_yaml, run
from tests.tools import require_tool
from watchdog.metrics import Metrics, exposed_names

DASHBOARD = DEPLOY / "grafana" / "watchdog-dashboard.json"
RULES = DEPLOY / "prometheus" / "watchdog-alerts.yaml"
# the watchdog's own names, and the standard process/platform collectors on its registry
METRIC = re.compile(r"\b(?:watchdog|process|python)_[a-zA-Z0-9_]*[a-zA-Z0-9]")
# Grafana's variables, replaced by sample values so promtool can parse the PromQL
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": "watchdog",
    "$target": "web",
    "$signal": "error_rate",
}


def defined() -> frozenset[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    return exposed_names(registry)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in data["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_exprs() -> list[str]:
    data = dashboard()
    exprs = [t["expr"] for p in panels(data) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in data["annotations"]["list"] if "expr" in a]
    return exprs


def variable_queries() -> list[str]:
    return [v["query"]["query"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]


def rule_exprs() -> list[str]:
    return [r["expr"] for g in load_yaml(RULES)["groups"] for r in g["rules"]]


def substitute(expr: str) -> str:
    for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    return expr


class TestDashboard:
    def test_is_valid_json_with_panels(self) -> None:
        """The dashboard parses as JSON and has a uid, a title and query panels."""
        data = dashboard()
        assert data["uid"] == "rollback-watchdog"
        assert data["title"]
        assert len(dashboard_exprs()) >= 15

    def test_panel_ids_are_unique(self) -> None:
        """Grafana needs unique panel ids."""
        ids = [p["id"] for p in panels(dashboard())]
        assert len(ids) == len(set(ids))

    def test_panels_use_the_datasource_variable(self) -> None:
        """Every query panel reads from the ${datasource} variable, not a hard-coded uid."""
        for panel in panels(dashboard()):
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]

    def test_covers_what_operators_need(self) -> None:
        """Signals against thresholds, decisions, rollbacks, source health and lag are shown."""
        joined = "\n".join(dashboard_exprs())
        for name in (
            "watchdog_signal_value",
            "watchdog_rule_threshold",
            "watchdog_decisions_total",
            "watchdog_rollbacks_total",
            "watchdog_source_up",
            "watchdog_scheduling_lag_seconds_bucket",
        ):
            assert name in joined

    def test_signals_panel_repeats_per_signal_with_thresholds(self) -> None:
        """One panel per signal plots the value and the thresholds on it together."""
        (panel,) = [p for p in panels(dashboard()) if p.get("repeat") == "signal"]
        exprs = " ".join(t["expr"] for t in panel["targets"])
        assert "watchdog_signal_value" in exprs
        assert "watchdog_rule_threshold" in exprs


class TestReferences:
    def test_dashboard_metrics_are_defined(self) -> None:
        """Every watchdog_* (and process_*) name the dashboard queries is served by the daemon."""
        used = {m for e in dashboard_exprs() + variable_queries() for m in METRIC.findall(e)}
        assert used
        assert used <= defined(), used - defined()

    def test_alert_metrics_are_defined(self) -> None:
        """Every watchdog_* name in the alert rules is defined in watchdog/metrics.py."""
        used = {m for e in rule_exprs() for m in METRIC.findall(e)}
        assert used
        assert used <= defined(), used - defined()

    def test_an_undefined_name_would_be_caught(self) -> None:
        """The name extraction finds a misspelt metric (guards the two checks above)."""
        used = set(METRIC.findall('rate(watchdog_rollback_total{job="watchdog"}[5m])'))
        assert used == {"watchdog_rollback_total"}
        assert not used <= defined()

    @pytest.mark.tool
    def test_dashboard_queries_parse_as_promql(self, tmp_path: Any) -> None:
        """Each dashboard query, variables filled in, is PromQL the real promtool accepts."""
        promtool = require_tool("PROMTOOL", "promtool")
        rules = [
            {"record": f"dashboard:query_{i}", "expr": substitute(e)}
            for i, e in enumerate(dashboard_exprs())
        ]
        path = tmp_path / "dashboard-rules.yaml"
        path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
        result = run([promtool, "check", "rules", str(path)])
        assert result.returncode == 0, result.stdout + result.stderr
