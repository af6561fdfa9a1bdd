"""watchdog/families.py: plain labelled counters and gauges export what prometheus_client's do."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

from watchdog.families import PlainCounter, PlainGauge

LABELS = ("target", "result")

#: what a daemon does to a counter family: declare at zero, count, count by more
COUNTS: list[tuple[tuple[str, ...], float]] = [
    (("web", "sent"), 0),
    (("api", "failed"), 1),
    (("web", "sent"), 2.5),
    (('we"b\\x\ny', "sent"), 1),
    (("web", "failed"), 0),
]
#: and to a gauge family: set, set again, NaN, infinities, big and small numbers
SETS: list[tuple[tuple[str, ...], float]] = [
    (("web", "a"), 1),
    (("web", "a"), 0.25),
    (("api", "b"), math.nan),
    (("api", "c"), math.inf),
    (("api", "d"), -math.inf),
    (("db", "e"), 123456789.0),
    (("db", "f"), 1e-7),
    (("db", "g"), -0.0),
    (('x"\\\n', "h"), 3),
]


@pytest.fixture(autouse=True)
def _no_created_series() -> None:
    # as the daemon's Metrics does, process-wide: no *_created series (plain counters have none)
    disable_created_metrics()  # type: ignore[no-untyped-call]


def both(kind: str) -> tuple[CollectorRegistry, Any, CollectorRegistry, Any]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    name, doc = "watchdog_things_total", 'Things by "target" and result,\nwith a \\ backslash.'
    if kind == "counter":
        return (
            ours,
            PlainCounter(name, doc, LABELS, registry=ours),
            theirs,
            Counter(name, doc, LABELS, registry=theirs),
        )
    name = "watchdog_level"
    return (
        ours,
        PlainGauge(name, doc, LABELS, registry=ours),
        theirs,
        Gauge(name, doc, LABELS, registry=theirs),
    )


class TestSameAsPrometheusClient:
    def test_counter(self) -> None:
        """Counted the same way, a plain counter exposes the same bytes, by both renderers."""
        ours_registry, ours, theirs_registry, theirs = both("counter")
        for labels, amount in COUNTS:
            ours.labels(*labels).inc(amount)
            theirs.labels(*labels).inc(amount)
        ours.labels(target="db", result="sent")
        theirs.labels(target="db", result="sent")
        ours.inc_at(("db", "sent"), 4)
        theirs.labels("db", "sent").inc(4)
        expected = generate_latest(theirs_registry)
        assert generate_latest(ours_registry) == expected
        assert ours.render() == expected

    def test_gauge(self) -> None:
        """Set the same way, a plain gauge exposes the same bytes, by both renderers."""
        ours_registry, ours, theirs_registry, theirs = both("gauge")
        for labels, value in SETS:
            ours.labels(*labels).set(value)
            theirs.labels(*labels).set(value)
        ours.labels(target="q", result="r").inc(2)
        theirs.labels(target="q", result="r").inc(2)
        ours.labels(target="q", result="r").dec(0.5)
        theirs.labels(target="q", result="r").dec(0.5)
        ours.set_at(("z", "z"), 7.0)
        theirs.labels("z", "z").set(7)
        expected = generate_latest(theirs_registry)
        assert generate_latest(ours_registry) == expected
        assert ours.render() == expected

    def test_reads_the_same(self) -> None:
        """get_sample_value sees plain series as prometheus_client's."""
        registry, counter, _, _ = both("counter")
        counter.labels(target="web", result="sent").inc(3)
        assert (
            registry.get_sample_value("watchdog_things_total", {"target": "web", "result": "sent"})
            == 3
        )
        assert counter.labels("web", "sent").get() == 3


class TestChecks:
    @pytest.mark.parametrize(
        "call",
        [
            lambda m: m.labels("web"),
            lambda m: m.labels(target="web"),
            lambda m: m.labels(target="web", outcome="x"),
            lambda m: m.labels("web", result="x"),
        ],
    )
    @pytest.mark.parametrize("kind", ["counter", "gauge"])
    def test_bad_labels_are_refused_alike(self, kind: str, call: Callable[[Any], Any]) -> None:
        """A wrong label name or count is a ValueError, as with prometheus_client."""
        _, ours, _, theirs = both(kind)
        with pytest.raises(ValueError):  # noqa: PT011
            call(theirs)
        with pytest.raises(ValueError):  # noqa: PT011
            call(ours)

    def test_a_counter_never_goes_down(self) -> None:
        """A negative increment is refused, as with prometheus_client."""
        _, ours, _, theirs = both("counter")
        with pytest.raises(ValueError, match="non-negative"):
            theirs.labels("web", "sent").inc(-1)
        with pytest.raises(ValueError, match="non-negative"):
            ours.labels("web", "sent").inc(-1)

    def test_names_collide_as_they_would(self) -> None:
        """Registering the same name twice on one registry is refused."""
        registry = CollectorRegistry()
        PlainCounter("watchdog_x_total", "x", ["a"], registry=registry)
        with pytest.raises(ValueError, match="Duplicated"):
            Counter("watchdog_x", "x", ["a"], registry=registry)
