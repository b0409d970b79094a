"""The Geo plugin's view: a nearby search drawn with its query circle and the geohash cells it listed.

The drawing is a map-less SVG scatter (longitude across, scaled by the cosine of the query's
latitude so the circle stays round; latitude up), so it works offline, on GitHub and in nbval.
With the ``geo-map`` extra (ipyleaflet) the live view adds an interactive map of the same search.

    >>> view = geo.dashboard()
    >>> view.search(-23.55, -46.63, radius_km=5)   # what the Search button does; returns the DataFrame
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import MissingDependencyError
from s3db_nb.plugins.geo import EARTH_RADIUS_KM, GeoQuery, decode_geohash

from . import svg
from .base import Dashboard, esc, html_table, section, stat_cards

if TYPE_CHECKING:
    import pandas as pd

_KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180
_MAX_POINTS = 2000  # points drawn (the query read them anyway; this bounds the SVG size)
_MAX_CELLS = 400  # cell outlines drawn


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


class GeoDashboard(Dashboard):
    """Nearby search on one configured resource: stats, an SVG of the points read (matches in
    colour), the query circle and cells, and the results table. Controls: resource, lat, lon,
    radius and a Search button."""

    title = "Geo"

    def __init__(self, plugin: Any, *, resource: str | None = None, table_rows: int = 20) -> None:
        super().__init__(plugin)
        names = list(plugin.configs)
        self.resource_name: str | None = resource or (names[0] if names else None)
        self.table_rows = table_rows
        self.lat: float | None = None
        self.lon: float | None = None
        self.radius_km = 10.0
        self.limit: int | None = None
        self.results: pd.DataFrame | None = None
        self.query: GeoQuery | None = None
        self.map: Any = None
        self._map_layer: Any = None

    # -- actions ----------------------------------------------------------------------------------

    def search(
        self, lat: float, lon: float, radius_km: float | None = None, *, resource: str | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """Run ``find_nearby`` and show it (what the Search button does); returns the results."""
        if resource is not None:
            self.resource_name = resource
        self.lat, self.lon = lat, lon
        if radius_km is not None:
            self.radius_km = radius_km
        self.limit = limit
        self._run_search()
        super().refresh()
        return self.results

    def refresh(self, *_: Any) -> None:
        """Re-run the current search (the data may have changed) and redraw."""
        if self.lat is not None and self.lon is not None:
            self._run_search()
        super().refresh()

    def _run_search(self) -> None:
        self.results = self.plugin.find_nearby(self.resource_name, self.lat, self.lon, self.radius_km, self.limit)
        self.query = self.results.attrs["geo_query"]
        self._draw_map()

    # -- static face --------------------------------------------------------------------------------

    def render(self) -> str:
        configs = self.plugin.configs
        if not configs:
            return "<p><i>GeoPlugin has no resources configured: GeoPlugin(resources={'stores': {'lat_field': 'lat', 'lon_field': 'lon'}})</i></p>"
        cfg = configs[self.resource_name]
        levels = ", ".join(f"{p} ({partition})" for p, (_, partition) in cfg.levels.items()) if cfg.use_partitions else "none (scans)"
        cards: dict[str, Any] = {"resource": cfg.resource, "fields": f"{cfg.lat_field}, {cfg.lon_field}", "geohash levels": levels}
        q = self.query
        if q is None or q.resource != cfg.resource:
            return stat_cards(cards) + "<p><i>Pick a point and a radius, then press Search.</i></p>"
        cards.update(
            {
                "results": q.results,
                "records read": q.read,
                "cells listed": len(q.cells),
                "read through": f"{q.partition} (precision {q.precision})" if q.partition else "a scan of the whole resource",
            }
        )
        where = f"within {q.radius_km:g} km of ({q.center[0]:.6g}, {q.center[1]:.6g})"
        if self.limit is not None:
            where += f", the {self.limit} nearest"
        return stat_cards(cards) + section("Search", f"<p>{esc(where)}</p>{self._scatter(q)}") + section("Nearby", self._table())

    def _scatter(self, q: GeoQuery) -> str:
        lat0, lon0 = q.center
        squeeze = max(math.cos(math.radians(lat0)), 0.05)

        def x_of(lon: float) -> float:  # unwrapped around the query, so ±180 does not tear the picture
            return (lon0 + _wrap(lon - lon0)) * squeeze

        shown = q.points[:_MAX_POINTS]
        rects = []
        for gh in q.cells[:_MAX_CELLS]:
            cell = decode_geohash(gh)
            left = x_of(cell.west)
            rects.append((left, cell.south, left + (cell.east - cell.west) * squeeze, cell.north))
        radius = max(q.radius_km or 0.0, 0.5) / _KM_PER_DEGREE
        cx = x_of(lon0)
        return svg.scatter(
            [(x_of(lon), lat) for _, lat, lon, _ in shown],
            groups=[0 if matched else 5 for *_, matched in shown],
            labels=[record_id for record_id, *_ in shown],
            highlight=[(cx, lat0)],
            circles=[(cx, lat0, radius)],
            rects=rects,
            bounds=(cx - 1.3 * radius, lat0 - 1.3 * radius, cx + 1.3 * radius, lat0 + 1.3 * radius),
            title=f"{q.results} of {q.read} records read are within {q.radius_km:g} km",
            width=420,
            height=420,
        )

    def _table(self) -> str:
        df = self.results
        columns = [c for c in df.columns if not str(c).startswith("_geohash")]
        return html_table(df[columns], limit=self.table_rows, empty="no record within the radius")

    # -- live face ----------------------------------------------------------------------------------

    def controls(self) -> list[Any]:
        import ipywidgets as w

        lat, lon = self._start_point()
        self.resource_picker = w.Dropdown(options=list(self.plugin.configs), value=self.resource_name, description="resource")
        self.lat_input = w.BoundedFloatText(value=lat, min=-90, max=90, description="lat")
        self.lon_input = w.BoundedFloatText(value=lon, min=-180, max=180, description="lon")
        self.radius_input = w.BoundedFloatText(value=self.radius_km, min=0, max=20016, description="radius km")
        self.search_button = w.Button(description="Search", icon="search", tooltip="find the records within the radius")
        self.search_button.on_click(self.callback(self._on_search))
        return [w.VBox([w.HBox([self.resource_picker, self.radius_input]), w.HBox([self.lat_input, self.lon_input, self.search_button])])]

    def _on_search(self, *_: Any) -> None:
        self.search(self.lat_input.value, self.lon_input.value, self.radius_input.value, resource=self.resource_picker.value)

    def _start_point(self) -> tuple[float, float]:
        """The current search point, else the first record's position (1 LIST + 1 GET), else (0, 0)."""
        if self.lat is not None and self.lon is not None:
            return self.lat, self.lon
        db = self.plugin.database
        if self.resource_name is not None and db is not None and self.resource_name in db:
            for record in db.resource(self.resource_name).list(limit=1):
                point = self.plugin.coordinates(self.resource_name, record)
                if point is not None:
                    return point
        return 0.0, 0.0

    @property
    def widget(self) -> Any:
        """The ipywidgets layout, with an ipyleaflet map below when ``geo-map`` is installed."""
        if self._widget is None:
            layout = Dashboard.widget.fget(self)
            try:
                layout.children = (*layout.children, self.leaflet_map())
            except MissingDependencyError:
                self.map = None  # the SVG view already shows everything
        return self._widget

    def leaflet_map(self) -> Any:
        """An ipyleaflet map of the last search (the ``geo-map`` extra)."""
        try:
            import ipyleaflet
        except ImportError:
            raise MissingDependencyError(
                "the Geo map needs ipyleaflet: pip install 's3db-nb[geo-map]' (the SVG view works without it)"
            ) from None
        if self.map is None:
            self.map = ipyleaflet.Map(center=(self.lat or 0.0, self.lon or 0.0), zoom=10, scroll_wheel_zoom=True)
            self._map_layer = ipyleaflet.LayerGroup()
            self.map.add(self._map_layer)
            self._draw_map()
        return self.map

    def _draw_map(self) -> None:
        if self.map is None or self.query is None:
            return
        import ipyleaflet

        q = self.query
        layers: list[Any] = []
        for gh in q.cells[:_MAX_CELLS]:
            south, west, north, east = decode_geohash(gh).bbox
            layers.append(ipyleaflet.Rectangle(bounds=((south, west), (north, east)), color="#999999", weight=1, fill_opacity=0.0))
        layers.append(ipyleaflet.Circle(location=q.center, radius=int((q.radius_km or 0) * 1000), color=svg.color(1), fill_opacity=0.08))
        for _, lat, lon, matched in q.points[:_MAX_POINTS]:
            layers.append(ipyleaflet.CircleMarker(location=(lat, lon), radius=4, color=svg.color(0 if matched else 5), fill_opacity=0.8))
        self._map_layer.layers = tuple(layers)
        self.map.center = q.center


__all__ = ["GeoDashboard"]
