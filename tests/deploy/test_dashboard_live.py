"""The Grafana dashboard and the alert rules against a real Prometheus scraping a real daemon.

Debian's Prometheus 2.42 scrapes the daemon every second and evaluates
``deploy/prometheus/watchdog-alerts.yaml`` while the daemon watches the stand-ins through a
bad deployment: a P1 rollback, verified, then resolved. Afterwards every PromQL expression
of ``deploy/grafana/watchdog-dashboard.json`` (panels, annotations, variables) and every alert
rule is evaluated over the HTTP API. A panel that should have data on such a run and has none
fails the test: a wrong label, a renamed metric or a series that only appears after its first
event shows up here, not as an empty panel in someone's incident. The exceptions are listed
in :data:`EMPTY_ON_THIS_RUN`, each with why.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import yaml

from tests.deploy.support import DEPLOY
from tests.deploy.test_metric_references import dashboard, panels, variable_queries
from tests.live import TARGET, Live, live_daemon
from tests.realtools import Tool, get_json, prometheus

RULES = DEPLOY / "prometheus" / "watchdog-alerts.yaml"
JOB = "watchdog"  # what the alert rules' job matchers expect
#: the signals the run produces; the repeated "$signal" panel is evaluated for each
SIGNALS = ("health_up", "error_rate", "latency_p95_s")
#: Grafana's variables as a dashboard on this run would fill them
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$job": JOB,
    "$target": TARGET,
}
#: panels (by title) with no data on this run, and why that is right
EMPTY_ON_THIS_RUN = {
    "Last drill duration": "no drill ran: the drill gauges are absent until one does",
    "Last drill result": "no drill ran: the drill gauges are absent until one does",
    "Last drill": "no drill ran: the drill gauges are absent until one does",
}
#: alert rules whose left-hand side has no data on this run, and why
RULES_WITHOUT_DATA = {
    "WatchdogDrillFailed": "no drill ran",
    "WatchdogDrillSlow": "no drill ran",
}


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


def fill(expr: str, signal: str) -> str:
    for var, value in sorted({**VARIABLES, "$signal": signal}.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    return expr


def panel_queries() -> dict[str, list[Query]]:
    """Each panel's queries (title → queries), the repeated panel once per signal."""
    out: dict[str, list[Query]] = {}
    for panel in panels(dashboard()):
        signals = SIGNALS if panel.get("repeat") == "signal" else ("",)
        for signal in signals:
            title = panel["title"].replace("$signal", signal)
            for target in panel.get("targets", []):
                out.setdefault(title, []).append(
                    Query(f"panel {title!r}", fill(target["expr"], signal))
                )
    for annotation in dashboard()["annotations"]["list"]:
        if "expr" in annotation:
            name = f"annotation {annotation['name']}"
            out[name] = [Query(name, fill(annotation["expr"], ""))]
    return out


def rule_sides() -> dict[str, str]:
    """Each alert's condition without its threshold: what the alert compares."""
    sides = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            expr = " ".join(rule["expr"].split())
            expr = re.sub(r"\s+or absent\(.*\)$", "", expr)
            expr = re.sub(r"\s*(==|!=|>=|<=|>|<)\s*[0-9.]+$", "", expr)
            assert not re.search(r"(==|!=|>=|<=|[<>])\s*[0-9.]+$", expr), rule["alert"]
            sides[rule["alert"]] = expr
    return sides


async def instant(prom: Tool, expr: str) -> list[dict[str, Any]]:
    body = await get_json(f"{prom.url}/api/v1/query", query=expr)
    assert body["status"] == "success", (expr, body)
    result = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        return [{"metric": {}, "value": result}]
    assert isinstance(result, list)
    return result


def has_data(result: list[dict[str, Any]]) -> bool:
    """Some series with a number a panel can draw (NaN is what Grafana shows as nothing)."""
    return any(not math.isnan(float(r["value"][1])) for r in result)


async def until(prom: Tool, expr: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not has_data(await instant(prom, expr)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{expr} had no data within {limit_s} s: {prom.output()}")
        await asyncio.sleep(0.25)


@dataclass
class Run:
    live: Live
    prom: Tool
    #: the exceptions' query results before the incident started
    before: dict[str, list[list[dict[str, Any]]]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Run]:
    """A live daemon through one incident, scraped from start to end by a real Prometheus
    (one run for the whole module: about 15 s)."""
    async with (
        live_daemon() as live,
        prometheus(
            tmp_path_factory.mktemp("prometheus"),
            scrape={JOB: live.metrics_address},
            rule_files=[RULES],
        ) as prom,
    ):
        # the first scrape takes ~6 s (TOOLING.md); the incident starts after it, so the
        # series exist before their first event, as they would in production
        await until(prom, f'up{{job="{JOB}"}} == 1', 25)
        before = {
            title: [await instant(prom, q.expr) for q in queries]
            for title, queries in panel_queries().items()
            if title in EMPTY_ON_THIS_RUN
        }
        await live.incident()
        # wait until Prometheus has scraped the end of the incident too
        await until(prom, f'watchdog_rollbacks_total{{job="{JOB}", result="verified"}} == 1', 10)
        await until(prom, f'watchdog_open_incidents{{job="{JOB}"}} == 0', 10)
        await asyncio.sleep(2.5)  # at least two rule evaluations after that
        yield Run(live, prom, before)


@pytest.mark.tool
@pytest.mark.asyncio(loop_scope="module")
class TestDashboardOnARealPrometheus:
    async def test_every_panel_has_data_or_a_reason(self, run: Run) -> None:
        """After an incident, each panel, the repeated signal panel for each signal and the
        rollback annotation return a drawable value; only the listed exceptions are empty."""
        prom = run.prom
        queries = panel_queries()
        assert len(queries) >= 25
        assert set(EMPTY_ON_THIS_RUN) <= set(queries)
        empty = []
        for title, group in queries.items():
            results = [await instant(prom, q.expr) for q in group]
            if title in EMPTY_ON_THIS_RUN:
                assert not any(has_data(r) for r in results), f"{title} has data now: update"
            elif not all(has_data(r) for r in results):
                empty += [q.expr for q, r in zip(group, results, strict=True) if not has_data(r)]
        assert empty == [], "panels with no data:\n" + "\n".join(empty)

    async def test_exceptions_were_empty_from_the_start(self, run: Run) -> None:
        """The drill panels read "no drill yet" from the first scrape, never 0/failed/1970."""
        before = run.before
        assert set(before) == set(EMPTY_ON_THIS_RUN)
        for title, results in before.items():
            assert not any(has_data(r) for r in results), title

    async def test_the_incident_shows_where_it_should(self, run: Run) -> None:
        """The rollback, its refusal-free path, the page and the chat are counted per target,
        and the source label is the source's name within the target."""
        prom = run.prom

        async def value(expr: str) -> float:
            (series,) = await instant(prom, expr)
            return float(series["value"][1])

        sel = f'job="{JOB}", target="{TARGET}"'
        assert await value(f'watchdog_rollbacks_total{{{sel}, result="succeeded"}}') == 1
        assert await value(f"sum(watchdog_rollback_refusals_total{{{sel}}})") == 0
        assert (
            await value(f'watchdog_decisions_total{{{sel}, action="rollback", severity="P1"}}') >= 1
        )
        assert await value(f'watchdog_pages_total{{{sel}, result="sent"}}') >= 1
        assert await value(f'watchdog_notifications_total{{job="{JOB}", result="sent"}}') >= 1
        sources = {
            r["metric"]["source"] for r in await instant(prom, f"watchdog_source_up{{{sel}}}")
        }
        assert sources == {"health", "version", "sentry"}

    async def test_variables_list_the_run(self, run: Run) -> None:
        """The dashboard's job, target and signal variables offer what this run exported."""
        prom = run.prom
        found = {}
        for query in variable_queries():
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
            assert match, query
            series, label = match.groups()
            body = await get_json(
                f"{prom.url}/api/v1/label/{label}/values", **{"match[]": fill(series, "")}
            )
            found[label] = set(body["data"])
        assert JOB in found["job"]
        assert TARGET in found["target"]
        assert set(SIGNALS) <= found["signal"]


@pytest.mark.tool
@pytest.mark.asyncio(loop_scope="module")
class TestAlertRulesOnARealPrometheus:
    async def test_rules_load_and_evaluate_cleanly(self, run: Run) -> None:
        """Prometheus loaded every alert rule, evaluated each without error, and none fires
        or is pending once the incident has resolved."""
        prom = run.prom
        body = await get_json(f"{prom.url}/api/v1/rules", type="alert")
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        assert {r["name"] for r in rules} == set(rule_sides())
        for rule in rules:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
            assert not rule.get("lastError"), rule["name"]
        alerts = (await get_json(f"{prom.url}/api/v1/alerts"))["data"]["alerts"]
        assert alerts == []

    async def test_what_each_rule_compares_has_data(self, run: Run) -> None:
        """Each alert's condition without its threshold has a value on this run: the names
        and labels it matches are the daemon's (a rule that can never fire fails here)."""
        prom = run.prom
        missing = []
        for name, side in rule_sides().items():
            data = has_data(await instant(prom, side))
            if name in RULES_WITHOUT_DATA:
                assert not data, f"{name} has data now: update RULES_WITHOUT_DATA"
            elif not data:
                missing.append(f"{name}: {side}")
        assert missing == [], "\n".join(missing)


def test_exceptions_name_real_panels() -> None:
    """Every listed exception is a panel of the dashboard (a renamed panel is noticed)."""
    titles = {p["title"] for p in panels(dashboard())}
    assert set(EMPTY_ON_THIS_RUN) <= titles
    assert set(RULES_WITHOUT_DATA) <= set(rule_sides())
