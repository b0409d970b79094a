"""Geo: location queries (radius, bounding box, distance) on latitude/longitude fields.

Each configured resource gets plugin attributes ``_geohash`` (at ``precision``) and
``_geohash_zoom<N>`` (one per zoom level), kept in sync by insert/update hooks, and one
partition per level (``byGeohash``, ``byGeohashZoom<N>``; the s3db.js names). A query covers
its area with the geohash cells of one level, lists only those partitions, reads only the
records in them and then filters exactly (haversine or bounds). Nothing is cut off before the
exact filter, so results are complete (s3db.js scans only ``limit×10`` records without
partitions); circles over a pole or across longitude ±180 and boxes with ``west > east`` work.

    >>> from s3db_nb.plugins.geo import GeoPlugin
    >>> stores = db.create_resource("stores", {"name": "string", "lat": "number", "lon": "number"})
    >>> geo = db.use_plugin(GeoPlugin(resources={"stores": {"lat_field": "lat", "lon_field": "lon"}}))
    >>> stores.insert({"name": "Sé", "lat": -23.5505, "lon": -46.6333})
    >>> stores.find_nearby(-23.55, -46.63, radius_km=5)   # DataFrame sorted by _distance_km
    >>> stores.find_in_bounds(north=-23.5, south=-23.6, east=-46.6, west=-46.7)

Geohashes are bit-for-bit those of s3db.js (a coordinate exactly on a cell edge belongs to the
lower cell), so buckets written by either library are queried alike.
"""

from __future__ import annotations

import functools
import heapq
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from s3db_nb.plugin_api import NotFoundError, Plugin, PluginError, ValidationError, get_path

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Record, Resource

#: mean Earth radius used by every distance (the value s3db.js uses)
EARTH_RADIUS_KM = 6371.0
BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"
_BASE32_INDEX = {c: i for i, c in enumerate(BASE32)}
#: the keys a resource's configuration may have
RESOURCE_OPTIONS = {"lat_field": None, "lon_field": None, "precision": 5, "zoom_levels": [3], "use_partitions": True, "add_geohash": False}
_KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180
_SLACK_KM = 1e-6  # cell pruning keeps cells this close to the edge (float rounding)

__all__ = [
    "GeoPlugin",
    "GeoConfig",
    "GeoQuery",
    "GeoDistance",
    "GeohashCell",
    "EARTH_RADIUS_KM",
    "encode_geohash",
    "decode_geohash",
    "get_neighbors",
    "haversine_km",
    "cell_size_km",
]


# -- geohash ------------------------------------------------------------------------------------


class GeohashCell(NamedTuple):
    """A decoded geohash: its centre and the ± error (half the cell's height and width) in degrees."""

    latitude: float
    longitude: float
    lat_error: float
    lon_error: float

    @property
    def south(self) -> float:
        return self.latitude - self.lat_error

    @property
    def north(self) -> float:
        return self.latitude + self.lat_error

    @property
    def west(self) -> float:
        return self.longitude - self.lon_error

    @property
    def east(self) -> float:
        return self.longitude + self.lon_error

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(south, west, north, east)``."""
        return (self.south, self.west, self.north, self.east)


def _bit_counts(precision: int) -> tuple[int, int]:
    """Longitude and latitude bits of a geohash of ``precision`` characters (5 bits each, lon first)."""
    return (5 * precision + 1) // 2, 5 * precision // 2


def _check_precision(precision: Any, name: str = "precision") -> int:
    if isinstance(precision, bool) or not isinstance(precision, int) or not 1 <= precision <= 12:
        raise PluginError(f"{name} must be an integer from 1 to 12 (5 ≈ 4.9 km cells), got {precision!r}")
    return precision


def _coordinate(value: Any, name: str, limit: float) -> float:
    if isinstance(value, str):  # hooks see the input before the schema casts it (CSV imports give text)
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not -limit <= value <= limit:
        raise ValidationError(
            [{"field": name, "rule": "coordinate", "message": f"must be a number from {-limit:g} to {limit:g}", "value": value}]
        )
    return float(value)


def _bisect(value: float, low: float, high: float, bits: int) -> int:
    # the exact halving of s3db.js: above the midpoint means the upper half (so ties go lower)
    index = 0
    for _ in range(bits):
        middle = (low + high) / 2
        if value > middle:
            index, low = index * 2 + 1, middle
        else:
            index, high = index * 2, middle
    return index


def _cell_of(lat: float, lon: float, precision: int) -> tuple[int, int]:
    """Column (longitude) and row (latitude) of the cell holding the point."""
    lon_bits, lat_bits = _bit_counts(precision)
    return _bisect(lon, -180.0, 180.0, lon_bits), _bisect(lat, -90.0, 90.0, lat_bits)


def _hash_of(x: int, y: int, precision: int) -> str:
    lon_bits, lat_bits = _bit_counts(precision)
    value = 0
    for i in range(5 * precision):
        if i % 2 == 0:
            lon_bits -= 1
            value = value << 1 | (x >> lon_bits) & 1
        else:
            lat_bits -= 1
            value = value << 1 | (y >> lat_bits) & 1
    return "".join(BASE32[(value >> 5 * (precision - 1 - k)) & 31] for k in range(precision))


def _cell_from_hash(geohash: str) -> tuple[int, int, int]:
    if not isinstance(geohash, str) or not 1 <= len(geohash) <= 12:
        raise PluginError(f"a geohash is a string of 1 to 12 characters, got {geohash!r}")
    x = y = 0
    bit = 0
    for char in geohash.lower():
        code = _BASE32_INDEX.get(char)
        if code is None:
            raise PluginError(f"invalid geohash character {char!r} in {geohash!r}; geohashes use the alphabet {BASE32}")
        for shift in range(4, -1, -1):
            if bit % 2 == 0:
                x = x << 1 | (code >> shift) & 1
            else:
                y = y << 1 | (code >> shift) & 1
            bit += 1
    return x, y, len(geohash)


def _cell_bounds(x: int, y: int, precision: int) -> tuple[float, float, float, float]:
    """``(south, west, north, east)`` of a cell (exact: cell sizes are powers of two)."""
    lon_bits, lat_bits = _bit_counts(precision)
    width, height = 360.0 / (1 << lon_bits), 180.0 / (1 << lat_bits)
    return -90.0 + y * height, -180.0 + x * width, -90.0 + (y + 1) * height, -180.0 + (x + 1) * width


def encode_geohash(lat: float, lon: float, precision: int = 5) -> str:
    """The geohash of a point (base 32, ``precision`` characters), identical to s3db.js's."""
    precision = _check_precision(precision)
    return _hash_of(*_cell_of(_coordinate(lat, "lat", 90), _coordinate(lon, "lon", 180), precision), precision)


def decode_geohash(geohash: str) -> GeohashCell:
    """The centre of a geohash cell and its ± error in degrees (``.bbox`` gives the edges)."""
    x, y, precision = _cell_from_hash(geohash)
    south, west, north, east = _cell_bounds(x, y, precision)
    return GeohashCell((south + north) / 2, (west + east) / 2, (north - south) / 2, (east - west) / 2)


def get_neighbors(geohash: str) -> list[str]:
    """The 8 cells around ``geohash``, in s3db.js order: SW, S, SE, W, E, NW, N, NE.

    East and west wrap across longitude ±180; beyond a pole the row continues on the other
    side of it (longitude + 180°), which is where a step north from a polar cell lands.
    """
    x, y, precision = _cell_from_hash(geohash)
    lon_bits, lat_bits = _bit_counts(precision)
    columns, rows = 1 << lon_bits, 1 << lat_bits
    out = []
    for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
        nx, ny = x + dx, y + dy
        if ny < 0 or ny >= rows:  # over the pole: same row, half the world away
            ny, nx = y, nx + columns // 2
        out.append(_hash_of(nx % columns, ny, precision))
    return out


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points (haversine, R = 6 371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def cell_size_km(precision: int) -> tuple[float, float]:
    """Height and width (at the equator) of a cell of ``precision``, in km."""
    lon_bits, lat_bits = _bit_counts(_check_precision(precision))
    return 180.0 / (1 << lat_bits) * _KM_PER_DEGREE, 360.0 / (1 << lon_bits) * _KM_PER_DEGREE


# -- covering an area with cells ------------------------------------------------------------------


def _wrap_lon(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


def _lon_gap(a: float, b: float) -> float:
    """Angular distance between two longitudes, 0–180."""
    return abs(_wrap_lon(a - b))


def _column_ranges(west: float, east: float, precision: int) -> list[tuple[int, int]]:
    """Column ranges covering longitudes ``west``…``east`` (``east`` may exceed 180 or
    ``west`` fall below -180: the range then wraps across the antimeridian)."""
    columns = 1 << _bit_counts(precision)[0]
    if east - west >= 360:
        return [(0, columns - 1)]
    index = lambda lon: _bisect(min(180.0, max(-180.0, lon)), -180.0, 180.0, _bit_counts(precision)[0])  # noqa: E731
    if west < -180:
        return [(index(west + 360), columns - 1), (0, index(east))]
    if east > 180:
        return [(index(west), columns - 1), (0, index(east - 360))]
    return [(index(west), index(east))]


def _row_range(south: float, north: float, precision: int) -> tuple[int, int]:
    bits = _bit_counts(precision)[1]
    return _bisect(max(-90.0, south), -90.0, 90.0, bits), _bisect(min(90.0, north), -90.0, 90.0, bits)


def _circle_ranges(lat: float, lon: float, radius_km: float, precision: int) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Columns and rows of the smallest cell block holding the spherical cap (its exact bounding box)."""
    delta = radius_km / EARTH_RADIUS_KM
    pad = 1e-9
    south, north = lat - math.degrees(delta) - pad, lat + math.degrees(delta) + pad
    if delta >= math.pi or north >= 90 or south <= -90:  # the cap holds a pole: every longitude
        return [(0, (1 << _bit_counts(precision)[0]) - 1)], _row_range(south, north, precision)
    spread = math.degrees(math.asin(min(1.0, math.sin(delta) / math.cos(math.radians(lat)))))
    return _column_ranges(lon - spread - pad, lon + spread + pad, precision), _row_range(south, north, precision)


def _bounds_ranges(north: float, south: float, east: float, west: float, precision: int) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    return _column_ranges(west, east if west <= east else east + 360, precision), _row_range(south, north, precision)


def _block_size(ranges: tuple[list[tuple[int, int]], tuple[int, int]]) -> int:
    columns, (first_row, last_row) = ranges
    return sum(b - a + 1 for a, b in columns) * (last_row - first_row + 1)


def _cells(
    ranges: tuple[list[tuple[int, int]], tuple[int, int]], precision: int
) -> Iterable[tuple[str, tuple[float, float, float, float]]]:
    columns, (first_row, last_row) = ranges
    for a, b in columns:
        for x in range(a, b + 1):
            for y in range(first_row, last_row + 1):
                yield _hash_of(x, y, precision), _cell_bounds(x, y, precision)


def _distance_to_cell(lat: float, lon: float, bounds: tuple[float, float, float, float]) -> float:
    """Exact shortest distance in km from a point to a cell (0 inside).

    Outside, the nearest point is on an edge. Along a parallel the distance grows with the
    longitude gap, so the nearest point there has the longitude closest to ours; along a
    meridian it peaks once, at latitude atan2(sin φ, cos φ·cos Δλ), clamped to the edge.
    """
    south, west, north, east = bounds
    inside_lon = west <= lon <= east
    if inside_lon and south <= lat <= north:
        return 0.0
    near_lon = lon if inside_lon else (west if _lon_gap(lon, west) <= _lon_gap(lon, east) else east)
    best = min(haversine_km(lat, lon, south, near_lon), haversine_km(lat, lon, north, near_lon))
    phi = math.radians(lat)
    for meridian in (west, east):
        peak = math.degrees(math.atan2(math.sin(phi), math.cos(phi) * math.cos(math.radians(lon - meridian))))
        best = min(best, haversine_km(lat, lon, min(north, max(south, peak)), meridian))
    return best


# -- configuration and query results ------------------------------------------------------------


@dataclass(frozen=True)
class GeoConfig:
    """How one resource is indexed: its coordinate fields and geohash levels."""

    resource: str
    lat_field: str
    lon_field: str
    precision: int = 5
    zoom_levels: tuple[int, ...] = (3,)
    use_partitions: bool = True
    add_geohash: bool = False  # s3db.js: also store the cell in a visible ``geohash`` field

    @property
    def levels(self) -> dict[int, tuple[str, str]]:
        """precision → (plugin attribute, partition name), finest first."""
        out = {self.precision: ("_geohash", "byGeohash")}
        for zoom in self.zoom_levels:
            out.setdefault(zoom, (f"_geohash_zoom{zoom}", f"byGeohashZoom{zoom}"))
        return dict(sorted(out.items(), reverse=True))

    @classmethod
    def parse(cls, resource: str, options: Any) -> GeoConfig:
        """Validate one entry of the ``resources`` option."""
        if not isinstance(options, Mapping):
            raise PluginError(
                f"GeoPlugin: resources[{resource!r}] must be a dict like {{'lat_field': 'lat', 'lon_field': 'lon'}}, got {options!r}"
            )
        unknown = sorted(set(options) - set(RESOURCE_OPTIONS))
        if unknown:
            raise PluginError(
                f"GeoPlugin: resources[{resource!r}] has unknown option(s) {', '.join(unknown)}; valid: {', '.join(RESOURCE_OPTIONS)}"
            )
        merged = {**RESOURCE_OPTIONS, **options}
        for key in ("lat_field", "lon_field"):
            if not isinstance(merged[key], str) or not merged[key]:
                raise PluginError(
                    f"GeoPlugin: resources[{resource!r}] needs {key} (the attribute holding the {key[:3]}itude), got {merged[key]!r}"
                )
        zooms = merged["zoom_levels"]
        if not isinstance(zooms, (list, tuple)):
            raise PluginError(f"GeoPlugin: resources[{resource!r}].zoom_levels must be a list of precisions like [3], got {zooms!r}")
        for flag in ("use_partitions", "add_geohash"):
            if not isinstance(merged[flag], bool):
                raise PluginError(f"GeoPlugin: resources[{resource!r}].{flag} must be True or False, got {merged[flag]!r}")
        return cls(
            resource=resource,
            lat_field=merged["lat_field"],
            lon_field=merged["lon_field"],
            precision=_check_precision(merged["precision"], f"resources[{resource!r}].precision"),
            zoom_levels=tuple(sorted({_check_precision(z, f"resources[{resource!r}].zoom_levels") for z in zooms}, reverse=True)),
            use_partitions=merged["use_partitions"],
            add_geohash=merged["add_geohash"],
        )


class GeoDistance(float):
    """Kilometres between two records; ``d["distance"]``, ``d["unit"]`` (``"km"``), ``d["from"]`` and
    ``d["to"]`` read it the way s3db.js's ``getDistance`` result is read."""

    def __new__(cls, km: float, from_id: str, to_id: str) -> GeoDistance:
        value = super().__new__(cls, km)
        value.from_id, value.to_id = from_id, to_id
        return value

    def to_dict(self) -> dict[str, Any]:
        """``{"distance": km, "unit": "km", "from": id1, "to": id2}``."""
        return {"distance": float(self), "unit": "km", "from": self.from_id, "to": self.to_id}

    def keys(self) -> list[str]:
        return list(self.to_dict())

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


@dataclass(frozen=True)
class GeoQuery:
    """What one query did: the level and cells it listed and how many records it read."""

    resource: str
    kind: str  # "nearby" or "bounds"
    center: tuple[float, float]
    radius_km: float | None = None
    bounds: tuple[float, float, float, float] | None = None  # north, south, east, west
    precision: int | None = None  # None: no usable partition, the whole resource was scanned
    partition: str | None = None
    cells: tuple[str, ...] = ()
    read: int = 0  # records fetched (GETs): the ids found in the cells listed
    results: int = 0
    points: tuple[tuple[str, float, float, bool], ...] = field(default=(), repr=False)  # id, lat, lon, matched

    def __deepcopy__(self, memo: dict[int, Any]) -> GeoQuery:
        # immutable: pandas deep-copies ``df.attrs`` on every operation, this keeps that free
        return self


# -- the plugin ---------------------------------------------------------------------------------


class GeoPlugin(Plugin):
    """Geohash-indexed location queries; see the module docstring.

    Options: ``resources`` — ``{name: {"lat_field", "lon_field", "precision" (1–12, default 5),
    "zoom_levels" (extra precisions, default [3]), "use_partitions" (default True)}}``;
    ``max_cells`` — a query lists at most this many cells at the finest level that fits
    (default 128); an area needing more than 16× that at the coarsest level is scanned whole.
    """

    defaults = {"resources": {}, "max_cells": 128}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        resources = self.options["resources"]
        if not isinstance(resources, Mapping):
            raise PluginError(
                f"GeoPlugin: resources must be a dict of resource name → {{'lat_field': ..., 'lon_field': ...}}, got {resources!r}"
            )
        self.configs: dict[str, GeoConfig] = {name: GeoConfig.parse(name, cfg) for name, cfg in resources.items()}
        max_cells = self.options["max_cells"]
        if isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 1:
            raise PluginError(f"GeoPlugin: max_cells must be a positive integer, got {max_cells!r}")
        self.max_cells = max_cells
        self.last_query: GeoQuery | None = None
        self._ready: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    def on_install(self) -> None:
        for name in self.configs:
            self.when_resource(name, self._setup)
        self.add_database_hook("after_create_resource", self._on_redefined)

    def on_uninstall(self, purge_data: bool = False) -> None:
        # the geohash attributes leave with the plugin, so the partitions on them must go too
        db = self._db()
        for name in sorted(self._ready):
            if name in db:
                for _, partition in self.configs[name].levels.values():
                    db.resource(name).remove_partition(partition)
        self._ready.clear()

    def _on_redefined(self, resource: Resource) -> None:
        # a redefined resource keeps our hooks and attributes but takes its partitions from the new definition
        if resource.name in self._ready:
            self._setup(resource)

    def _setup(self, resource: Resource) -> None:
        cfg = self.configs[resource.name]
        for path in (cfg.lat_field, cfg.lon_field):
            if resource.schema.field(path) is None:
                known = ", ".join(sorted(resource.schema.leaves_by_path())) or "(none)"
                raise PluginError(
                    f"GeoPlugin: resource {resource.name!r} has no attribute {path!r} (set lat_field/lon_field to one of: {known})"
                )
        user_fields = resource.schema_view()
        if cfg.add_geohash and "geohash" not in user_fields:
            self.add_plugin_attribute(resource, "geohash", "string|optional")
        for attr, _ in cfg.levels.values():
            if attr not in user_fields:  # s3db.js adds `_geohash` as a plain attribute: use it as it is
                self.add_plugin_attribute(resource, attr, "string|optional")
        if resource.name not in self._ready:
            hook = self._geohash_hook(cfg, resource.name)
            self.add_hook(resource, "before_insert", hook)
            self.add_hook(resource, "before_update", hook)
            for method in (self.find_nearby, self.find_in_bounds, self.get_distance):
                self.add_resource_method(resource, method.__name__, functools.partial(method, resource.name))
        added = False
        if cfg.use_partitions:
            for attr, partition in cfg.levels.values():
                added = resource.add_partition(partition, {attr: "string"}) or added
        self._ready.add(resource.name)
        if added and resource.list_ids(limit=1):
            self.log.info("indexing the records %r had before its geohash partitions existed", resource.name)
            self.reindex(resource)

    def _geohash_hook(self, cfg: GeoConfig, resource_name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        levels = cfg.levels

        def set_geohashes(data: dict[str, Any]) -> dict[str, Any]:
            lat, lon = get_path(data, cfg.lat_field), get_path(data, cfg.lon_field)
            if lat is None or lon is None:  # no position: no cell (and no stale one)
                for attr in [a for a, _ in levels.values()] + (["geohash"] if cfg.add_geohash else []):
                    data.pop(attr, None)
                return data
            try:
                lat, lon = _coordinate(lat, cfg.lat_field, 90), _coordinate(lon, cfg.lon_field, 180)
            except ValidationError as exc:
                raise ValidationError(exc.errors, resource_name) from None
            full = _hash_of(*_cell_of(lat, lon, 12), 12)  # a coarser cell's hash is a prefix of a finer one's
            for precision, (attr, _) in levels.items():
                data[attr] = full[:precision]
            if cfg.add_geohash:
                data["geohash"] = full[: cfg.precision]
            return data

        return set_geohashes

    # -- helpers ------------------------------------------------------------------------------

    def _config(self, resource: Resource | str) -> tuple[Resource, GeoConfig]:
        target = self.resource(resource)
        cfg = self.configs.get(target.name)
        if cfg is None or target.name not in self._ready:
            raise PluginError(f"GeoPlugin is not set up for resource {target.name!r}; configured: {', '.join(self.configs) or '(none)'}")
        return target, cfg

    def coordinates(self, resource: Resource | str, record: Mapping[str, Any]) -> tuple[float, float] | None:
        """``(lat, lon)`` of a record of a configured resource, or None when it has no position."""
        return self._point(self.configs[self.resource(resource).name], record)

    def _point(self, cfg: GeoConfig, record: Mapping[str, Any]) -> tuple[float, float] | None:
        lat, lon = get_path(record, cfg.lat_field), get_path(record, cfg.lon_field)
        if isinstance(lat, bool) or isinstance(lon, bool) or not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)):
            return None
        return float(lat), float(lon)

    def _choose_level(self, resource: Resource, cfg: GeoConfig, block: Callable[[int], int], nearest_first: bool) -> int | None:
        """The finest partitioned level whose cover needs at most ``max_cells`` listings; else the
        coarsest while it needs at most 16× that (64× when a limit lets the query stop early);
        else None: scanning the whole resource is cheaper than that many listings."""
        usable = [p for p, (_, partition) in cfg.levels.items() if cfg.use_partitions and partition in resource.partitions]
        for precision in usable:
            if block(precision) <= self.max_cells:
                return precision
        if usable and block(usable[-1]) <= (64 if nearest_first else 16) * self.max_cells:
            return usable[-1]
        return None

    def _run(
        self,
        resource: Resource,
        cfg: GeoConfig,
        precision: int | None,
        cells: list[tuple[float, str]],
        center: tuple[float, float],
        keep: Callable[[float, float], bool],
        limit: int | None,
    ) -> tuple[list[tuple[float, Record]], dict[str, Any]]:
        """List the cells (nearest first), read the records in them and keep the matches.

        Without a limit every cell is listed in one parallel round. With one, cells go in
        rounds and the query stops once no unlisted cell can hold anything nearer than the
        limit-th match so far, which is why the result is still exact."""
        db = self._db()
        partition = None if precision is None else cfg.levels[precision][1]
        if precision is None:
            rounds: list[list[tuple[float, str]]] = [[(0.0, "")]]  # one listing of the whole resource
        else:
            size = len(cells) if limit is None else max(8, db.parallelism)
            rounds = [cells[i : i + size] for i in range(0, len(cells), size)]

        def list_cell(cell: tuple[float, str]) -> list[str]:
            if precision is None:
                return resource.list_ids()
            attr, name = cfg.levels[precision]
            return resource.list_ids(partition=name, partition_values={attr: cell[1]})

        seen: set[str] = set()
        listed_cells: list[str] = []
        matches: list[tuple[float, str, Record]] = []
        points: list[tuple[str, float, float, bool]] = []
        for number, group in enumerate(rounds):
            batch = []
            for ids in db.pool.map(list_cell, group):
                batch += [rid for rid in ids if rid not in seen]
                seen.update(ids)
            listed_cells += [gh for _, gh in group if gh]
            for record in resource.get_many(batch):
                point = self._point(cfg, record)
                if point is None:
                    continue
                matched = keep(*point)
                points.append((record["id"], point[0], point[1], matched))
                if matched:
                    matches.append((haversine_km(center[0], center[1], *point), record["id"], record))
            if limit is not None and len(matches) >= limit and number + 1 < len(rounds):
                kth = heapq.nsmallest(limit, matches, key=lambda m: (m[0], m[1]))[-1][0]
                if rounds[number + 1][0][0] > kth:
                    break
        matches.sort(key=lambda m: (m[0], m[1]))
        if limit is not None:
            matches = matches[:limit]
        stats = {"precision": precision, "partition": partition, "cells": tuple(listed_cells), "read": len(seen), "points": tuple(points)}
        return [(d, r) for d, _, r in matches], stats

    def _frame(self, cfg: GeoConfig, matches: list[tuple[float, Record]], query: GeoQuery) -> pd.DataFrame:
        import pandas as pd

        # ``_distance`` is the s3db.js name of the same kilometres
        rows = [{**record, "_distance": distance, "_distance_km": distance} for distance, record in matches]
        # an empty answer keeps the columns a full one would have (the resource's top-level fields)
        fields = [name for name in self.resource(cfg.resource).schema_view() if name != "id"]
        tail = ["_distance", "_distance_km"]
        df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["id", *fields, *tail])
        df = df[["id", *[c for c in df.columns if c not in ("id", *tail)], *tail]]
        df.attrs["geo_query"] = query
        self.last_query = query
        return df

    @staticmethod
    def _check_limit(limit: Any) -> int | None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValidationError(
                [{"field": "limit", "rule": "positive", "message": "must be a positive integer or None (every match)", "value": limit}]
            )
        return limit

    # -- queries ------------------------------------------------------------------------------

    def find_nearby(
        self,
        resource: Resource | str,
        lat: float,
        lon: float,
        radius_km: float = 10.0,
        limit: int | None = None,
        *,
        radius: float | None = None,
    ) -> pd.DataFrame:
        """Every record within ``radius_km`` (s3db.js: ``radius``, km) of the point (the ``limit`` nearest
        with a limit), nearest first, with ``_distance_km`` (and ``_distance``, its s3db.js name). Costs 1 LIST per cell of the cover (see
        ``df.attrs["geo_query"]``) and 1 GET per record in those cells."""
        resource, cfg = self._config(resource)
        radius_km = radius_km if radius is None else radius
        lat, lon = _coordinate(lat, "lat", 90), _coordinate(lon, "lon", 180)
        if isinstance(radius_km, bool) or not isinstance(radius_km, (int, float)) or not radius_km >= 0:
            raise ValidationError(
                [{"field": "radius_km", "rule": "non-negative", "message": "must be a number ≥ 0 (kilometres)", "value": radius_km}]
            )
        limit = self._check_limit(limit)
        precision = self._choose_level(resource, cfg, lambda p: _block_size(_circle_ranges(lat, lon, radius_km, p)), limit is not None)
        cells: list[tuple[float, str]] = []
        if precision is not None:
            for gh, bounds in _cells(_circle_ranges(lat, lon, radius_km, precision), precision):
                near = _distance_to_cell(lat, lon, bounds)
                if near <= radius_km + _SLACK_KM:
                    cells.append((near, gh))
            cells.sort()
        matches, stats = self._run(
            resource, cfg, precision, cells, (lat, lon), lambda a, b: haversine_km(lat, lon, a, b) <= radius_km, limit
        )
        query = GeoQuery(resource.name, "nearby", (lat, lon), radius_km=float(radius_km), results=len(matches), **stats)
        return self._frame(cfg, matches, query)

    def find_in_bounds(
        self, resource: Resource | str, north: float, south: float, east: float, west: float, limit: int | None = None
    ) -> pd.DataFrame:
        """Every record inside the box (``west > east`` means it crosses longitude ±180),
        sorted by distance from the box's centre (``_distance_km``). Costs 1 LIST per cell
        covering the box and 1 GET per record in those cells."""
        resource, cfg = self._config(resource)
        north, south = _coordinate(north, "north", 90), _coordinate(south, "south", 90)
        east, west = _coordinate(east, "east", 180), _coordinate(west, "west", 180)
        if south > north:
            raise ValidationError(
                [{"field": "south", "rule": "bounds", "message": f"must not be north of north ({north:g}); swap them", "value": south}]
            )
        limit = self._check_limit(limit)
        width = east - west if west <= east else east + 360 - west
        center = ((north + south) / 2, _wrap_lon(west + width / 2) if width < 360 else 0.0)
        precision = self._choose_level(resource, cfg, lambda p: _block_size(_bounds_ranges(north, south, east, west, p)), limit is not None)
        cells: list[tuple[float, str]] = []
        if precision is not None:
            cells = sorted(
                (_distance_to_cell(*center, bounds), gh)
                for gh, bounds in _cells(_bounds_ranges(north, south, east, west, precision), precision)
            )

        def inside(lat: float, lon: float) -> bool:
            in_lon = west <= lon <= east if west <= east else (lon >= west or lon <= east)
            return south <= lat <= north and in_lon

        matches, stats = self._run(resource, cfg, precision, cells, center, inside, limit)
        query = GeoQuery(resource.name, "bounds", center, bounds=(north, south, east, west), results=len(matches), **stats)
        return self._frame(cfg, matches, query)

    def get_distance(self, resource: Resource | str, id1: str, id2: str) -> GeoDistance:
        """Distance in km between two records (haversine; 2 GETs): a float that also reads as
        s3db.js's ``{"distance", "unit", "from", "to"}``."""
        resource, cfg = self._config(resource)
        found = {record["id"]: record for record in resource.get_many(dict.fromkeys([id1, id2]))}
        missing = [record_id for record_id in (id1, id2) if record_id not in found]
        if missing:
            raise NotFoundError(f"record(s) {', '.join(map(repr, missing))} not found in resource {resource.name!r}")
        points = []
        for record_id in (id1, id2):
            point = self._point(cfg, found[record_id])
            if point is None:
                raise PluginError(f"record {record_id!r} of {resource.name!r} has no {cfg.lat_field}/{cfg.lon_field} coordinates")
            points.append(point)
        return GeoDistance(haversine_km(*points[0], *points[1]), id1, id2)

    def reindex(self, resource: Resource | str) -> int:
        """Bring every record's geohashes and cell refs up to date (for records written before
        the plugin, or by a writer without it). LISTs, then 1 GET per record missing from the
        cells, an update for those with stale geohashes. Returns how many were fixed."""
        resource, cfg = self._config(resource)
        partitions = [p for _, p in cfg.levels.values() if cfg.use_partitions and p in resource.partitions]
        ids = resource.list_ids()
        if partitions:
            indexed = set(resource.list_ids(partition=partitions[0]))
            ids = [i for i in ids if i not in indexed]
        hook = self._geohash_hook(cfg, resource.name)
        stale = []
        for record in resource.get_many(ids):
            if self._point(cfg, record) is None:
                continue
            expected = hook({k: v for k, v in record.items()})
            if any(record.get(attr) != expected.get(attr) for attr, _ in cfg.levels.values()):
                stale.append(record["id"])
        fixed = len(self._db().pool.map(lambda rid: resource.update(rid, {}), stale))
        return fixed + sum(resource.rebuild_partition(p) for p in partitions)

    # -- s3db.js helpers ----------------------------------------------------------------------

    encode_geohash = staticmethod(encode_geohash)
    decode_geohash = staticmethod(decode_geohash)
    get_neighbors = staticmethod(get_neighbors)
    calculate_distance = staticmethod(haversine_km)

    def get_stats(self) -> dict[str, Any]:
        """The configured resources, their levels and cell sizes (no requests)."""
        rows = []
        for name, cfg in self.configs.items():
            height, width = cell_size_km(cfg.precision)
            rows.append(
                {
                    "resource": name,
                    "lat_field": cfg.lat_field,
                    "lon_field": cfg.lon_field,
                    "precision": cfg.precision,
                    "zoom_levels": list(cfg.zoom_levels),
                    "partitions": [p for _, p in cfg.levels.values()] if cfg.use_partitions else [],
                    "cell_size": f"~{height:.3g} × {width:.3g} km",
                    "ready": name in self._ready,
                }
            )
        return {"resources": len(rows), "configurations": rows}
