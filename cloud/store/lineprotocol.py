"""Scale-out series store: Readings out as line protocol; Points and Readings back from VictoriaMetrics.

Schema: one measurement, `reading`, with tags device, quality, quantity, reason (only when the reading is
not good) and unit, one float field `value`, and a millisecond timestamp:

    reading,device=pump\\ 7,quality=good,quantity=pm25,unit=ug/m3 value=12.5 1718000000000

VictoriaMetrics stores this as metric `reading_value` with the tags as labels, so a series is selected by
`reading_value{device="pump 7",quantity="pm25"}` and good data by adding `quality="good"`. One metric for
every quantity keeps the name space closed and lets dashboards pick quantities by label.

Writes go through influxdb-client's SYNCHRONOUS write API in large batches (InfluxDB 2/3 or
VictoriaMetrics' /api/v2/write). Neither backend says which samples were new, so `write` returns how many
lines were sent. Idempotency: InfluxDB overwrites a point with the same series and time; VictoriaMetrics
keeps duplicates unless started with `-dedup.minScrapeInterval=1ms`, which it then drops at query time and
during merges — run it so. Queries use VictoriaMetrics' HTTP API (`/api/v1/export`,
`/api/v1/query_range`) through urllib; against InfluxDB proper `query` and `readings` are not available.
VictoriaMetrics keeps about 12 significant decimal digits of each value.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Final, cast
from urllib.parse import urlencode

import urllib3.exceptions
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from cloud.store import Point, StoreError, bucket_edges
from gateway.readings import Quality, Reading, Reason

MEASUREMENT: Final = "reading"
FIELD: Final = "value"
# The client declares its precision constants as plain str.
PRECISION_MS: Final = cast(WritePrecision, WritePrecision.MS)
# Line protocol: tag keys, tag values and field keys escape comma, equals sign and space; a backslash is
# doubled so a value ending in one cannot escape the separator after it. Newlines cannot be represented.
_TAG_ESCAPES: Final = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ "})
_MEASUREMENT_ESCAPES: Final = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ "})

_TagKey = tuple[str, str, str, Quality, Reason | None]


def escape_tag(text: str) -> str:
    """Escape a tag key or value for line protocol."""
    return text.translate(_TAG_ESCAPES)


def _prefix(measurement: str, key: _TagKey) -> str | None:
    device, quantity, unit, quality, reason = key
    tags = {"device": device, "quality": quality.value, "quantity": quantity, "unit": unit}
    if reason is not None:
        tags["reason"] = reason.value
    if any(not v or "\n" in v or "\r" in v for v in tags.values()):
        return None
    # Tags sorted by key, as InfluxDB recommends for the fastest ingest.
    return measurement.translate(_MEASUREMENT_ESCAPES) + "".join(f",{k}={escape_tag(tags[k])}" for k in sorted(tags))


def encode(reading: Reading, measurement: str = MEASUREMENT) -> str | None:
    """Return one line of line protocol for `reading`, or None if it cannot be represented."""
    prefix = _prefix(measurement, (reading.device, reading.quantity, reading.unit, reading.quality, reading.reason))
    if prefix is None or not math.isfinite(reading.value):
        return None
    return f"{prefix} {FIELD}={float(reading.value)!r} {int(reading.ts_ms)}"


def _selector(metric: str, **labels: str) -> str:
    # json.dumps yields a double-quoted string with the escapes MetricsQL (Go syntax) understands.
    inner = ",".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in labels.items())
    return f"{{__name__={json.dumps(metric)},{inner}}}"


class LineProtocolStore:
    """SeriesStore writing line protocol via influxdb-client and querying VictoriaMetrics; one thread."""

    def __init__(
        self,
        url: str,
        *,
        bucket: str,
        org: str = "gridwatch",
        token: str = "",
        query_url: str | None = None,
        measurement: str = MEASUREMENT,
        batch_size: int = 50_000,
        timeout_s: float = 30.0,
    ) -> None:
        self.bucket, self.org, self.measurement, self.batch_size = bucket, org, measurement, batch_size
        self.stats: Counter[str] = Counter()
        self._metric = f"{measurement}_{FIELD}"
        self._query_url = (query_url or url).rstrip("/")
        self._timeout_s = timeout_s
        self._prefixes: dict[tuple[str, str, str, int, int], str] = {}
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def lines(self, readings: Sequence[Reading]) -> list[str]:
        """Return the line-protocol lines for `readings`, counting those that cannot be represented."""
        prefixes, measurement, out = self._prefixes, self.measurement, []
        isfinite = math.isfinite
        for r in readings:
            # id() of the enum members (singletons) because hashing an Enum is a Python-level call.
            key = (r.device, r.quantity, r.unit, id(r.quality), id(r.reason))
            prefix = prefixes.get(key)
            if prefix is None:
                tags = (r.device, r.quantity, r.unit, r.quality, r.reason)
                prefix = prefixes[key] = _prefix(measurement, tags) or ""
            if not prefix:  # cached as "" when a tag cannot be represented
                self.stats["unencodable"] += 1
                continue
            v = r.value
            if not isfinite(v):
                self.stats["not_finite"] += 1
                continue
            out.append(f"{prefix} value={float(v)!r} {r.ts_ms}")
        return out

    def write(self, readings: Sequence[Reading]) -> int:
        """Send `readings` in batches of batch_size lines; return how many lines were sent."""
        lines = self.lines(readings)
        for i in range(0, len(lines), self.batch_size):
            # One joined string per batch: the client then encodes once instead of once per line.
            body = "\n".join(lines[i : i + self.batch_size])
            try:
                self._api.write(self.bucket, self.org, record=body, write_precision=PRECISION_MS)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise StoreError(f"line protocol write failed after {i} of {len(lines)} lines: {exc}") from exc
        self.stats["sent"] += len(lines)
        return len(lines)

    def _post(self, path: str, params: dict[str, str]) -> bytes:
        request = urllib.request.Request(f"{self._query_url}{path}", data=urlencode(params).encode())
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            # VictoriaMetrics explains a refused query in the body (bad selector, too many points...).
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise StoreError(f"VictoriaMetrics {path} answered {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise StoreError(f"VictoriaMetrics {path} failed: {exc}") from exc

    def _export(self, selector: str, start_ms: int, end_ms: int) -> Iterator[tuple[dict[str, str], int, float]]:
        """Yield (labels, ts_ms, value) of every sample matching `selector` in [start_ms, end_ms)."""
        params = {"match[]": selector, "start": f"{start_ms / 1000:.3f}", "end": f"{(end_ms - 1) / 1000:.3f}"}
        for line in self._post("/api/v1/export", params).splitlines():
            if not line.strip():
                continue
            series = json.loads(line)
            for ts, v in zip(series["timestamps"], series["values"], strict=True):
                if start_ms <= ts < end_ms:
                    yield series["metric"], ts, v

    def query(self, device: str, quantity: str, start_ms: int, end_ms: int, step_ms: int | None = None) -> list[Point]:
        """Return good readings in [start_ms, end_ms), raw (export) or per step bucket (query_range)."""
        selector = _selector(self._metric, device=device, quantity=quantity, quality=Quality.GOOD.value)
        if step_ms is None:
            raw = sorted((ts, v) for _, ts, v in self._export(selector, start_ms, end_ms))
            return [Point(ts, v, v, v, 1) for ts, v in raw]
        first, end = bucket_edges(start_ms, end_ms, step_ms)
        # A rollup evaluated at t covers (t - window, t]; shifting it by step - 1 ms forward makes the value
        # at bucket start b cover exactly [b, b + step).
        offset = f" offset -{step_ms - 1}ms" if step_ms > 1 else ""
        window = f"{selector}[{step_ms}ms]{offset}"
        parts = [f'label_set({agg}({agg}_over_time({window})),"agg","{agg}")' for agg in ("sum", "min", "max")]
        parts.append(f'label_set(sum(count_over_time({window})),"agg","count")')
        params = {
            "query": f"union({','.join(parts)})",
            "start": f"{first / 1000:.3f}",
            "end": f"{(end - step_ms) / 1000:.3f}",
            "step": f"{step_ms}ms",
            "nocache": "1",
        }
        answer = json.loads(self._post("/api/v1/query_range", params))
        buckets: dict[int, dict[str, float]] = {}
        for result in answer["data"]["result"]:
            agg = result["metric"]["agg"]
            for t, v in result["values"]:
                buckets.setdefault(round(float(t) * 1000), {})[agg] = float(v)
        return [
            Point(b, a["sum"] / a["count"], a["min"], a["max"], int(a["count"]))
            for b, a in sorted(buckets.items())
            if a.get("count", 0) > 0 and len(a) == 4
        ]

    def readings(self, device: str, quantity: str, start_ms: int, end_ms: int) -> list[Reading]:
        """Return every stored reading of one series in [start_ms, end_ms), any quality, by time."""
        selector = _selector(self._metric, device=device, quantity=quantity)
        out = [
            Reading(
                device,
                quantity,
                v,
                labels["unit"],
                ts,
                Quality(labels["quality"]),
                Reason(labels["reason"]) if "reason" in labels else None,
            )
            for labels, ts, v in self._export(selector, start_ms, end_ms)
        ]
        out.sort(key=lambda r: r.ts_ms)
        return out

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()  # type: ignore[no-untyped-call]
