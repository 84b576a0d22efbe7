"""Prometheus metrics: the service's counters rendered at scrape time by a prometheus_client collector."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from cloud.fleet import Link, fleet_view
from cloud.service import CloudService


class ServiceCollector(Collector):
    """Reads ingest and series-store counters, fleet liveness and incident counts of one CloudService at a scrape."""

    def __init__(self, service: CloudService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family."""
        # Several workers report the same series: their values add up.
        totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        for worker in self.service.workers:
            for name, sample_labels, value in worker.counters.samples():
                totals[(name, tuple(sorted(sample_labels.items())))] += value
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for (name, pairs), value in totals.items():
            base = name.removesuffix("_total")
            family = families.get(base)
            if family is None:
                doc, names = f"gridwatch ingest {base}", [k for k, _ in pairs]
                family = (
                    CounterMetricFamily(base, doc, labels=names)
                    if name.endswith("_total")
                    else GaugeMetricFamily(base, doc, labels=names)
                )
                families[base] = family
            family.add_metric([v for _, v in pairs], value)
        yield from families.values()
        links = GaugeMetricFamily("gridwatch_gateways", "Registered gateways by link state", labels=["link"])
        rows = fleet_view(self.service.registry, self.service.liveness)
        for link in Link:
            links.add_metric([link.value], float(sum(1 for r in rows if r.link is link)))
        yield links
        incidents = self.service.incidents
        events = CounterMetricFamily(
            "gridwatch_events", "Alerts and liveness events taken by the incident layer", labels=["kind"]
        )
        for kind, count in sorted(incidents.intake.counts.items()):
            events.add_metric([kind], float(count))
        yield events
        stats = getattr(self.service.store.inner, "stats", None)
        if stats:
            series = CounterMetricFamily(
                "gridwatch_series_readings",
                "Readings the series store took, by outcome (written, duplicate, too_old, too_new, not_finite, ...)",
                labels=["outcome"],
            )
            for outcome, count in sorted(stats.items()):
                series.add_metric([outcome], float(count))
            yield series
        escalations = CounterMetricFamily("gridwatch_escalations", "Case escalations fired by the scheduler")
        escalations.add_metric([], float(self.service.escalations))
        yield escalations


def registry_for(service: CloudService) -> CollectorRegistry:
    """Return a private metrics registry for one service (no process-global state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service))
    return registry
