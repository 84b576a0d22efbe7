"""Point → grid lookups per CPU second on the bundled district (GridIndex.locate and locate_many)."""

from __future__ import annotations

import time

from cloud.grid import GridIndex, default_district


def main() -> None:
    """Print lookups per CPU second, best of five rounds, beside the bare STRtree query."""
    district = default_district()
    index = GridIndex(district)
    west, south, east, north = district.root.polygon.bounds
    n = 50_000
    lats = [south + (north - south) * ((i * 7919) % n) / n for i in range(n)]
    lons = [west + (east - west) * ((i * 104_729) % n) / n for i in range(n)]

    def best(run: object) -> float:
        times = []
        for _ in range(5):
            start = time.process_time()
            run()  # type: ignore[operator]
            times.append(time.process_time() - start)
        return min(times)

    single = best(lambda: [index.locate(a, o) for a, o in zip(lats, lons, strict=True)])
    many = best(lambda: index.locate_many(lats, lons))
    print(f"locate      : {n / single:>10,.0f} lookups/s (CPU)")
    print(f"locate_many : {n / many:>10,.0f} lookups/s (CPU)")


if __name__ == "__main__":
    main()
