"""Direct scrape: read the serving processes' own ``/metrics`` (local mode, no Prometheus).

Each target is one serving process's ``/metrics`` URL and is its own source in the
snapshot, so a restart of one process is detected and handled on its own. Parsing is
prometheus-client's text parser; the mapping of names and labels is ``snapshot.collect``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.operator.metrics.base import AnalysisTarget, MetricsError, ProviderUnavailable
from modeldeploy.operator.metrics.snapshot import Sample, Snapshot, SourceCounters, collect

Fetch = Callable[[str], str]


def parse_samples(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition; raises ``ProviderUnavailable`` on garbage."""
    try:
        return [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except (ValueError, TypeError, IndexError) as exc:
        raise ProviderUnavailable(f"cannot parse metrics text: {exc}") from exc


class ScrapeProvider:
    """Snapshots from scraping each target URL; ``fetch`` (url -> text) is injectable."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        fetch: Fetch | None = None,
        http_client: httpx.Client | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not targets:
            raise ValueError("ScrapeProvider needs at least one /metrics URL")
        self.targets = tuple(targets)
        self._client = http_client
        self._timeout = timeout
        self._fetch = fetch or self._http_fetch
        self._clock = clock

    def _http_fetch(self, url: str) -> str:
        try:
            if self._client is not None:
                response = self._client.get(url, timeout=self._timeout)
            else:
                response = httpx.get(url, timeout=self._timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"cannot scrape {url}: {exc}") from exc
        return response.text

    def _read(self, url: str) -> str:
        try:
            return self._fetch(url)
        except MetricsError:
            raise
        except Exception as exc:  # an injected fetcher's own failure
            raise ProviderUnavailable(f"cannot scrape {url}: {exc}") from exc

    def snapshot(self, target: AnalysisTarget) -> Snapshot:
        """All targets must answer: a missing process would silently drop its requests."""
        taken_at = self._clock()
        sources: dict[str, SourceCounters] = {}
        for url in self.targets:
            sources[url] = collect(parse_samples(self._read(url)), target)
        return Snapshot(sources, taken_at)

    def is_online(self) -> bool:
        try:
            for url in self.targets:
                self._read(url)
        except MetricsError:
            return False
        return True
