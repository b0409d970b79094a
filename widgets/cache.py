"""``CacheDashboard``: how well the cache works, as a notebook view of ``CachePlugin``.

Hit rate (overall and per resource, hits vs misses as stacked bars), entries and bytes per
resource, evictions per resource, and a table with every counter; a button empties the cache.

    >>> db.use_plugin(CachePlugin(ttl=600))
    >>> db.cache.dashboard()
"""

from __future__ import annotations

from typing import Any

from . import svg
from .base import Dashboard, html_table, section, stat_cards


def _bytes(size: int) -> str:
    """1536 → ``1.5 KiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{size} B"


class CacheDashboard(Dashboard):
    """The view of a ``CachePlugin`` (``db.cache.dashboard()``)."""

    title = "Cache"

    def render(self) -> str:
        stats = self.plugin.get_stats()
        rows = stats["resources"]
        ttl = stats["ttl"]
        cards = stat_cards(
            {
                "hit rate": f"{stats['hit_rate']:.1%}",
                "hits": f"{stats['hits']:,}",
                "misses": f"{stats['misses']:,}",
                "entries": f"{stats['entries']:,}",
                "size": _bytes(stats["bytes"]),
                "evictions": f"{stats['evictions']:,}",
                "invalidations": f"{stats['invalidations']:,}",
                "driver": f"{stats['driver']} · ttl {'∞' if ttl is None else f'{ttl:g} s'}",
            }
        )
        by_lookups = sorted(rows, key=lambda n: -(rows[n]["hits"] + rows[n]["misses"]))
        hit_bars = svg.stacked_bar_chart(
            {
                name: {"hits": rows[name]["hits"], "misses": rows[name]["misses"]}
                for name in by_lookups
                if rows[name]["hits"] + rows[name]["misses"]
            },
            empty="no cached read yet",
        )
        entry_bars = svg.bar_chart(
            sorted(((name, row["entries"]) for name, row in rows.items() if row["entries"]), key=lambda kv: -kv[1]),
            empty="the cache is empty",
        )
        eviction_bars = svg.bar_chart(
            sorted(((name, row["evictions"]) for name, row in rows.items() if row["evictions"]), key=lambda kv: -kv[1]),
            empty="no eviction",
        )
        table = html_table(
            [
                {
                    "resource": name,
                    "hit rate": f"{row['hit_rate']:.1%}",
                    "hits": row["hits"],
                    "misses": row["misses"],
                    "entries": row["entries"],
                    "size": _bytes(row["bytes"]),
                    "evictions": row["evictions"],
                    "invalidations": row["invalidations"],
                    "skipped": row["skipped"],
                    "errors": row["errors"],
                }
                for name, row in sorted(rows.items())
            ],
            empty="no resource is cached",
        )
        body = (
            cards
            + section("Hits and misses by resource", hit_bars)
            + section("Entries by resource", entry_bars)
            + section("Evictions by resource", eviction_bars)
            + section("Per resource", table)
        )
        if "tiers" in stats:
            body += section("Tiers (L1 first)", html_table(stats["tiers"], ["driver", "entries", "bytes"]))
        return body

    def controls(self) -> list[Any]:
        import ipywidgets as w

        button = w.Button(description="Clear cache", icon="trash", tooltip="remove every cached entry (counters stay)")

        def clear(_: Any) -> None:
            self.plugin.clear()
            self.refresh()

        button.on_click(self.callback(clear))
        self.clear_button = button
        return [button]


__all__ = ["CacheDashboard"]
