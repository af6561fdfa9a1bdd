"""Labelled counters and gauges kept as plain numbers, read only when ``/metrics`` is scraped.

At 1,000 targets the daemon exports some 60,000 labelled series, nearly all per target and
most of them counters declared at zero. prometheus_client keeps each series as a child metric
object with its own lock and value holder (some 630 bytes), and on every scrape builds a
sample object and a label dictionary for each: a third of the daemon's memory and, with a
scrape every 15 s, a large share of its CPU. A :class:`PlainCounter` or :class:`PlainGauge`
keeps one float per label tuple in a dict (zeros share one float) and is a collector on the
registry like any other, so ``generate_latest``, ``get_sample_value`` and every test see
ordinary counter and gauge families; :meth:`Family.render` writes its text-format lines
directly, the same bytes ``generate_latest`` writes (``tests/test_families.py`` proves it,
family by family, against prometheus_client's own classes).

The daemon writes these from its event loop only; a scrape may read them from another thread
(``/metrics`` renders off the loop), and reads a snapshot of the dict, which the GIL makes
whole. No I/O here.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import ClassVar, Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

__all__ = ["CounterSeries", "Family", "GaugeSeries", "PlainCounter", "PlainGauge"]

#: every series at zero shares this one float
_ZERO: Final = 0.0

#: how prometheus_client writes a value (Go's format: ``+Inf``, ``NaN``, ``1e+06``)
_go_float: Callable[[float], str] = floatToGoString
_NEEDS_ESCAPE: Final = re.compile(r'[\\\n"]')


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class Family:
    """One labelled family: its values by label tuple (in ``labelnames`` order)."""

    kind: ClassVar[str]

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...] | list[str],
        *,
        registry: CollectorRegistry,
    ) -> None:
        if not labelnames:
            raise ValueError(f"{name}: a plain family needs labels (use prometheus_client)")
        #: the family's name as prometheus_client names it (a counter without ``_total``)
        self.name = name.removesuffix("_total") if self.kind == "counter" else name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        #: the series: label values in ``labelnames`` order -> value
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def _key(self, values: tuple[object, ...], named: dict[str, object]) -> tuple[str, ...]:
        """The label tuple of a ``labels()`` call, checked as prometheus_client checks it."""
        if values and named:
            raise ValueError("Can't pass both *args and **kwargs")
        if named:
            if sorted(named) != sorted(self.labelnames):
                raise ValueError("Incorrect label names")
            values = tuple(named[n] for n in self.labelnames)
        elif len(values) != len(self.labelnames):
            raise ValueError("Incorrect label count")
        key = tuple(str(v) for v in values)
        if key not in self.values:
            # the series exists from its first labels() call, at zero, as prometheus_client's
            self.values[key] = _ZERO
        return key

    # -- the collector interface ---------------------------------------------------------

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> list[Metric]:
        family = self._family()
        for key, value in list(self.values.items()):
            family.add_metric(key, value)
        return [family]

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    # -- the fast path of /metrics -------------------------------------------------------

    def render(self) -> bytes:
        """This family in the text format, as ``generate_latest`` writes it: labels sorted by
        name, values escaped, Go's float format."""
        series = f"{self.name}_total" if self.kind == "counter" else self.name
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        names = self.labelnames
        order = sorted(range(len(names)), key=names.__getitem__)
        # 'name{a="%s",b="%s"} ' with the labels in name order, and a getter putting the
        # values in that order
        template = series + "{" + ",".join(f'{names[i]}="%s"' for i in order) + "} "
        in_order: Callable[[tuple[str, ...]], tuple[str, ...]] = (
            operator.itemgetter(*order) if len(order) > 1 else lambda v: (v[order[0]],)
        )
        lines = [f"# HELP {series} {doc}\n# TYPE {series} {self.kind}\n"]
        append = lines.append
        for key, value in list(self.values.items()):
            if _NEEDS_ESCAPE.search("".join(key)):
                key = tuple(_escape(v) for v in key)
            append(template % in_order(key) + _go_float(value) + "\n")
        return "".join(lines).encode()


class CounterSeries:
    """One series of a :class:`PlainCounter` (what ``labels()`` returns)."""

    __slots__ = ("_key", "_values")

    def __init__(self, values: dict[tuple[str, ...], float], key: tuple[str, ...]) -> None:
        self._values = values
        self._key = key

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._values[self._key] = self._values.get(self._key, _ZERO) + amount

    def get(self) -> float:
        return self._values.get(self._key, _ZERO)


class GaugeSeries:
    """One series of a :class:`PlainGauge` (what ``labels()`` returns)."""

    __slots__ = ("_key", "_values")

    def __init__(self, values: dict[tuple[str, ...], float], key: tuple[str, ...]) -> None:
        self._values = values
        self._key = key

    def set(self, value: float) -> None:
        self._values[self._key] = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self._values[self._key] = self._values.get(self._key, _ZERO) + amount

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    def get(self) -> float:
        return self._values.get(self._key, _ZERO)


class PlainCounter(Family):
    """A labelled counter: ``labels(...).inc()`` as with prometheus_client's ``Counter``."""

    kind = "counter"

    def labels(self, *values: object, **named: object) -> CounterSeries:
        return CounterSeries(self.values, self._key(values, named))

    def inc_at(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        """The hot path: ``key`` is the label values in order, unchecked."""
        self.values[key] = self.values.get(key, _ZERO) + amount


class PlainGauge(Family):
    """A labelled gauge: ``labels(...).set(v)`` as with prometheus_client's ``Gauge``."""

    kind = "gauge"

    def labels(self, *values: object, **named: object) -> GaugeSeries:
        return GaugeSeries(self.values, self._key(values, named))

    def set_at(self, key: tuple[str, ...], value: float) -> None:
        """The hot path: ``key`` is the label values in order, unchecked."""
        self.values[key] = value
