"""GeoPlugin: geohash maths against reference values, hooks and partitions on every backend,
complete nearby/bounds queries against brute force (5 000 points on memory and file, a few
dozen on moto), poles and the antimeridian, and the dashboard driven headlessly."""

from __future__ import annotations

import math
import random

import pytest

import s3db_nb
from s3db_nb.errors import MissingDependencyError, NotFoundError, PluginError, ValidationError
from s3db_nb.plugins.geo import (
    GeoPlugin,
    cell_size_km,
    decode_geohash,
    encode_geohash,
    get_neighbors,
    haversine_km,
)
from s3db_nb.widgets.geo import GeoDashboard

GEO = {"stores": {"lat_field": "lat", "lon_field": "lon"}}
STORE_FIELDS = {"name": "string", "lat": "number|optional", "lon": "number|optional"}


def brute_nearby(points, lat, lon, radius_km, limit=None):
    hits = sorted(
        (haversine_km(lat, lon, p["lat"], p["lon"]), p["id"]) for p in points if haversine_km(lat, lon, p["lat"], p["lon"]) <= radius_km
    )
    return [i for _, i in hits[:limit]]


def brute_bounds(points, north, south, east, west):
    def inside(p):
        in_lon = west <= p["lon"] <= east if west <= east else (p["lon"] >= west or p["lon"] <= east)
        return south <= p["lat"] <= north and in_lon

    return sorted(p["id"] for p in points if inside(p))


def scattered(count, seed, lat=(-90, 90), lon=(-180, 180), prefix="p"):
    rng = random.Random(seed)
    return [{"id": f"{prefix}{i:05d}", "name": f"{prefix}{i}", "lat": rng.uniform(*lat), "lon": rng.uniform(*lon)} for i in range(count)]


# -- geohash and distance maths (no backend) -------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, km",
    [
        ((50.0663889, -5.7147222), (58.6438889, -3.07), 968.9),  # Land's End – John o' Groats (movable-type reference)
        ((51.5074, -0.1278), (48.8566, 2.3522), 343.5),  # London – Paris
        ((40.7128, -74.0060), (34.0522, -118.2437), 3935.7),  # New York – Los Angeles
        ((-33.8688, 151.2093), (-37.8136, 144.9631), 713.4),  # Sydney – Melbourne
        ((0.0, 179.5), (0.0, -179.5), 111.195),  # one degree across the antimeridian
        ((90.0, 0.0), (89.0, 123.0), 111.195),  # one degree from the pole, any longitude
    ],
)
def test_haversine_matches_reference_distances(a, b, km):
    assert haversine_km(*a, *b) == pytest.approx(km, rel=0.005)
    assert haversine_km(*b, *a) == pytest.approx(haversine_km(*a, *b))


@pytest.mark.parametrize(
    "lat, lon, precision, expected",
    [
        (42.6, -5.6, 5, "ezs42"),  # the Wikipedia example
        (57.64911, 10.40744, 11, "u4pruydqqvj"),  # geohash.org's example
        (-33.8688, 151.2093, 9, "r3gx2f77b"),
        (35.6762, 139.6503, 12, "xn76cydhzven"),
        # exactly on cell edges: s3db.js puts them in the lower cell (values from its encodeGeohash)
        (0, 0, 5, "7zzzz"),
        (90, 180, 6, "zzzzzz"),
        (-90, -180, 6, "000000"),
        (45, 90, 4, "tzzz"),
        (0, 180, 3, "rzz"),
    ],
)
def test_encode_matches_reference_hashes(lat, lon, precision, expected):
    assert encode_geohash(lat, lon, precision) == expected


def test_decode_gives_centre_and_error_of_the_cell():
    cell = decode_geohash("ezs42")
    assert cell.latitude == pytest.approx(42.605, abs=0.001) and cell.longitude == pytest.approx(-5.603, abs=0.001)
    assert cell.lat_error == pytest.approx(0.02197, abs=1e-5) and cell.lon_error == pytest.approx(0.02197, abs=1e-5)
    south, west, north, east = cell.bbox
    assert south < 42.6 < north and west < -5.6 < east


def test_decode_then_encode_round_trips():
    rng = random.Random(1)
    for _ in range(200):
        precision = rng.randint(1, 12)
        geohash = encode_geohash(rng.uniform(-90, 90), rng.uniform(-180, 180), precision)
        cell = decode_geohash(geohash)
        assert encode_geohash(cell.latitude, cell.longitude, precision) == geohash


def test_neighbours_of_an_inner_cell():
    # SW, S, SE, W, E, NW, N, NE
    assert get_neighbors("ezs42") == ["ezefp", "ezs40", "ezs41", "ezefr", "ezs43", "ezefx", "ezs48", "ezs49"]


def test_neighbours_wrap_the_antimeridian_and_cross_the_pole():
    # "z" is the north-east corner cell of the 8×4 precision-1 grid
    assert get_neighbors("z") == ["w", "x", "8", "y", "b", "f", "g", "u"]
    assert get_neighbors("0")[:3] == ["5", "h", "j"]  # south of the south-west corner: across the south pole


@pytest.mark.parametrize("geohash", ["rzzzz", "pbpbp", "zzzzz", "00000", "bpbpb", "upbpb"])
def test_every_neighbour_touches_the_cell(geohash):
    cell = decode_geohash(geohash)
    neighbours = get_neighbors(geohash)
    assert len(set(neighbours)) == 8 and geohash not in neighbours
    for other in map(decode_geohash, neighbours):
        lon_gap = abs((other.longitude - cell.longitude + 180) % 360 - 180)
        lat_gap = abs(other.latitude - cell.latitude)
        touches_side = lon_gap <= 2 * cell.lon_error + 1e-9 and lat_gap <= 2 * cell.lat_error + 1e-9
        over_pole = abs(other.latitude) == abs(cell.latitude) and abs(cell.latitude) + cell.lat_error == pytest.approx(90)
        assert touches_side or over_pole


def test_bad_input_is_rejected_with_the_fix():
    with pytest.raises(PluginError, match="invalid geohash character 'a'"):
        decode_geohash("ezsa2")
    with pytest.raises(ValidationError, match="lat"):
        encode_geohash(91, 0)
    with pytest.raises(PluginError, match="1 to 12"):
        encode_geohash(0, 0, 13)


def test_cell_sizes_match_the_s3db_js_table():
    assert cell_size_km(5)[0] == pytest.approx(4.9, rel=0.01)
    assert cell_size_km(3)[1] == pytest.approx(156, rel=0.01)


@pytest.mark.parametrize(
    "resources, message",
    [
        ({"stores": {"lat_field": "lat"}}, "needs lon_field"),
        ({"stores": {"lat_field": "lat", "lon_field": "lon", "latField": "x"}}, "unknown option"),
        ({"stores": {"lat_field": "lat", "lon_field": "lon", "precision": 13}}, "precision must be an integer from 1 to 12"),
        ({"stores": {"lat_field": "lat", "lon_field": "lon", "zoom_levels": 3}}, "zoom_levels must be a list"),
        ({"stores": "lat,lon"}, "must be a dict"),
    ],
)
def test_bad_configuration_fails_at_construction(resources, message):
    with pytest.raises(PluginError, match=message):
        GeoPlugin(resources=resources)


# -- hooks, partitions and queries on every backend (memory, file, moto) ---------------------------


@pytest.fixture
def stores(plugin_db):
    resource = plugin_db.create_resource("stores", STORE_FIELDS)
    plugin_db.use_plugin(GeoPlugin(resources=GEO))
    return resource


def test_insert_sets_geohashes_and_partition_refs(stores):
    stores.insert({"id": "sp", "name": "Sé", "lat": -23.5505, "lon": -46.6333})
    record = stores.get("sp")
    assert record["_geohash"] == encode_geohash(-23.5505, -46.6333, 5) == "6gyf4"
    assert record["_geohash_zoom3"] == "6gy"
    assert stores.list_ids(partition="byGeohash", partition_values={"_geohash": "6gyf4"}) == ["sp"]
    assert stores.list_ids(partition="byGeohashZoom3", partition_values={"_geohash_zoom3": "6gy"}) == ["sp"]


def test_update_recomputes_geohashes_and_moves_the_refs(stores):
    stores.insert({"id": "s1", "name": "x", "lat": -23.5505, "lon": -46.6333})
    stores.update("s1", {"lat": 48.8566, "lon": 2.3522})
    assert stores.get("s1")["_geohash"] == encode_geohash(48.8566, 2.3522, 5)
    assert stores.list_ids(partition="byGeohash", partition_values={"_geohash": "6gyf4"}) == []
    assert stores.find_nearby(48.85, 2.35, 5)["id"].tolist() == ["s1"]
    stores.update("s1", {"lat": None, "lon": None})  # no position any more: no cell either
    assert "_geohash" not in stores.get("s1")
    assert stores.count(partition="byGeohash") == 0


def test_bad_coordinates_are_rejected_naming_the_field(stores):
    with pytest.raises(ValidationError, match="lat"):
        stores.insert({"name": "x", "lat": 123.0, "lon": 0.0})


def test_numeric_text_coordinates_are_indexed_like_numbers(stores):
    # what a CSV import hands the insert hooks before the schema casts it
    stores.insert({"id": "txt", "name": "x", "lat": " -23.5614", "lon": "-46.6559"})
    assert stores.get("txt")["_geohash"].startswith(encode_geohash(-23.5614, -46.6559, 4))
    assert list(stores.find_nearby(-23.56, -46.65, radius_km=2)["id"]) == ["txt"]


def test_nearby_reads_only_the_cells_it_needs(plugin_db, stores):
    points = scattered(40, 2, lat=(-24.5, -22.5), lon=(-47.5, -45.5)) + scattered(20, 3, lat=(40, 41), lon=(-74, -73), prefix="ny")
    stores.insert_many(points)
    gets = []

    def listener(event):
        if event.operation == "GetObject":
            gets.append(event.key)

    plugin_db.client.add_listener(listener)
    try:
        df = stores.find_nearby(-23.5, -46.5, 20)
    finally:
        plugin_db.client.remove_listener(listener)
    assert df["id"].tolist() == brute_nearby(points, -23.5, -46.5, 20)
    assert len(gets) < len(points) // 2 and not any("ny" in key for key in gets)
    assert df.attrs["geo_query"].partition == "byGeohash"


def test_nearby_results_are_a_sorted_frame_with_distances(stores):
    points = scattered(30, 4, lat=(10, 11), lon=(20, 21))
    stores.insert_many(points)
    df = stores.find_nearby(10.5, 20.5, 40, limit=5)
    assert list(df.columns[:4]) == ["id", "name", "lat", "lon"] and df.columns[-1] == "_distance_km"
    assert df["id"].tolist() == brute_nearby(points, 10.5, 20.5, 40, limit=5)
    assert df["_distance_km"].is_monotonic_increasing
    assert stores.find_nearby(-50, -50, 1).empty


def test_bounds_across_the_antimeridian(stores):
    points = scattered(30, 5, lat=(-10, 10), lon=(170, 180)) + scattered(30, 6, lat=(-10, 10), lon=(-180, -170), prefix="w")
    stores.insert_many(points)
    df = stores.find_in_bounds(north=5, south=-5, east=-175, west=175)
    assert sorted(df["id"]) == brute_bounds(points, 5, -5, -175, 175)
    assert len(df) > 0 and (df["lon"].abs() >= 175).all()


def test_get_distance_between_records(stores):
    stores.insert_many(
        [{"id": "lon", "name": "London", "lat": 51.5074, "lon": -0.1278}, {"id": "par", "name": "Paris", "lat": 48.8566, "lon": 2.3522}]
    )
    assert stores.get_distance("lon", "par") == pytest.approx(343.5, rel=0.005)
    with pytest.raises(NotFoundError, match="'nowhere'"):
        stores.get_distance("lon", "nowhere")


def test_resource_created_after_install_is_set_up(plugin_db):
    plugin_db.use_plugin(GeoPlugin(resources={"shops": {"lat_field": "pos.lat", "lon_field": "pos.lon", "zoom_levels": []}}))
    shops = plugin_db.create_resource("shops", {"name": "string", "pos": {"lat": "number", "lon": "number"}})
    shops.insert({"id": "a", "name": "A", "pos": {"lat": 1.0, "lon": 1.0}})
    assert set(shops.partitions) == {"byGeohash"}
    assert shops.find_nearby(1.0, 1.0, 1)["id"].tolist() == ["a"]


def test_records_written_before_install_are_indexed(plugin_db):
    shops = plugin_db.create_resource("stores", STORE_FIELDS)
    points = scattered(12, 7, lat=(0, 1), lon=(0, 1))
    shops.insert_many(points + [{"id": "nowhere", "name": "no position"}])
    plugin_db.use_plugin(GeoPlugin(resources=GEO))
    assert shops.find_nearby(0.5, 0.5, 100)["id"].tolist() == brute_nearby(points, 0.5, 0.5, 100)
    assert shops.count(partition="byGeohash") == 12


def test_refs_missing_for_current_geohashes_are_rebuilt(plugin_db, stores):
    # a bucket written without partitions (s3db.js's default) has _geohash but no refs
    stores.insert_many(scattered(5, 8, lat=(0, 1), lon=(0, 1)))
    plugin_db.client.delete_prefix("resource=stores/partition=byGeohash/")
    assert stores.count(partition="byGeohash") == 0
    assert plugin_db.plugins.geo.reindex("stores") == 5
    assert stores.count(partition="byGeohash") == 5


def test_a_redefined_resource_keeps_its_geo_setup(plugin_db, stores):
    stores.insert({"id": "a", "name": "A", "lat": 10.0, "lon": 10.0})
    again = plugin_db.create_resource("stores", {**STORE_FIELDS, "city": "string|optional"})
    assert again is not stores and {"byGeohash", "byGeohashZoom3"} <= set(again.partitions)
    again.insert({"id": "b", "name": "B", "lat": 10.001, "lon": 10.001, "city": "X"})
    df = again.find_nearby(10.0, 10.0, 1)
    assert df["id"].tolist() == ["a", "b"] and df.attrs["geo_query"].partition == "byGeohash"


def test_without_partitions_queries_scan_and_stay_complete():
    db = s3db_nb.connect("memory://geo-no-partitions")
    places = db.create_resource("places", {"name": "string", "lat": "number", "lon": "number"})
    db.use_plugin(GeoPlugin(resources={"places": {"lat_field": "lat", "lon_field": "lon", "use_partitions": False}}))
    points = scattered(300, 21)
    places.insert_many(points)
    assert not places.partitions and "_geohash" in places.get(points[0]["id"])
    df = places.find_nearby(20.0, 20.0, 3000)
    assert df["id"].tolist() == brute_nearby(points, 20.0, 20.0, 3000)
    assert df.attrs["geo_query"].partition is None and df.attrs["geo_query"].read == len(points)
    db.disconnect()


def test_partitions_survive_a_reconnect(plugin_db, stores, plugin_reconnect):
    stores.insert({"id": "a", "name": "A", "lat": 10.0, "lon": 10.0})
    again = plugin_reconnect()
    assert "byGeohash" in again.resource("stores").partitions
    again.use_plugin(GeoPlugin(resources=GEO))
    assert again.resource("stores").find_nearby(10.0, 10.0, 1)["id"].tolist() == ["a"]


def test_uninstall_removes_partitions_methods_and_attributes(plugin_db, stores):
    stores.insert({"id": "a", "name": "A", "lat": 10.0, "lon": 10.0})
    plugin_db.uninstall_plugin("geo")
    assert "byGeohash" not in stores.partitions and not hasattr(stores, "find_nearby")
    assert "_geohash" not in stores.get("a")
    stores.insert({"id": "b", "name": "B", "lat": 1.0, "lon": 1.0})
    assert list(plugin_db.client.list("resource=stores/partition=")) == []


def test_queries_on_an_unconfigured_resource_say_so(plugin_db, stores):
    plugin_db.create_resource("other", {"name": "string"})
    with pytest.raises(PluginError, match="not set up for resource 'other'"):
        plugin_db.plugins.geo.find_nearby("other", 0, 0, 1)


def test_missing_coordinate_attribute_is_named(plugin_db):
    plugin_db.create_resource("stores", {"name": "string", "latitude": "number"})
    with pytest.raises(PluginError, match="no attribute 'lat'"):
        plugin_db.use_plugin(GeoPlugin(resources=GEO))


# -- completeness on 5 000 points against brute force (memory and file) ------------------------------


@pytest.fixture(scope="module", params=["memory", "file"])
def world(request, tmp_path_factory):
    """5 000 points over the globe plus clusters at both poles and along the antimeridian."""
    points = scattered(4000, 11)
    points += scattered(400, 12, lat=(85, 90), prefix="n") + scattered(200, 13, lat=(-90, -86), prefix="s")
    points += scattered(200, 14, lon=(179, 180), lat=(-60, 60), prefix="e") + scattered(
        200, 15, lon=(-180, -179), lat=(-60, 60), prefix="w"
    )
    url = f"memory://geo-world-{id(request)}" if request.param == "memory" else f"file://{tmp_path_factory.mktemp('geo-world')}"
    db = s3db_nb.connect(url)
    resource = db.create_resource("places", {"name": "string", "lat": "number", "lon": "number"})
    db.use_plugin(GeoPlugin(resources={"places": {"lat_field": "lat", "lon_field": "lon"}}))
    resource.insert_many(points)
    yield resource, points
    db.disconnect()


NEARBY_CASES = [
    (0.0, 0.0, 300.0),  # on the cell edges of every level
    (48.85, 2.35, 800.0),
    (0.0, 179.9, 150.0),  # across the antimeridian
    (-12.0, -179.95, 400.0),
    (89.9, 0.0, 60.0),  # the cap holds the north pole
    (-89.5, 120.0, 200.0),
    (87.0, -45.0, 500.0),  # reaches over the pole
    (30.0, 60.0, 2500.0),  # big: coarse level or a scan
    (10.0, 10.0, 25.0),
]


@pytest.mark.parametrize("lat, lon, radius", NEARBY_CASES)
def test_nearby_is_complete(world, lat, lon, radius):
    resource, points = world
    df = resource.find_nearby(lat, lon, radius)
    assert df["id"].tolist() == brute_nearby(points, lat, lon, radius)


@pytest.mark.parametrize("lat, lon, radius", NEARBY_CASES)
def test_nearest_k_is_exact_and_stops_early(world, lat, lon, radius):
    resource, points = world
    df = resource.find_nearby(lat, lon, radius, limit=3)
    assert df["id"].tolist() == brute_nearby(points, lat, lon, radius, limit=3)


def test_nearest_k_reads_far_fewer_records_than_the_radius_holds(world):
    resource, points = world
    everything = resource.find_nearby(89.0, 0.0, 700).attrs["geo_query"]
    nearest = resource.find_nearby(89.0, 0.0, 700, limit=5).attrs["geo_query"]
    assert nearest.read < everything.read / 4 and everything.results >= 400


@pytest.mark.parametrize(
    "north, south, east, west",
    [
        (10, -10, 10, -10),
        (50, 30, -170, 170),  # west > east: crosses the antimeridian
        (90, 85, 180, -180),  # a polar cap
        (-86, -90, 20, -20),
        (60, -60, -179.5, 179.5),
        (5.5, 5.0, 3.0, 2.0),
    ],
)
def test_bounds_are_complete(world, north, south, east, west):
    resource, points = world
    df = resource.find_in_bounds(north, south, east, west)
    assert sorted(df["id"]) == brute_bounds(points, north, south, east, west)
    assert df["_distance_km"].is_monotonic_increasing


def test_small_queries_read_few_records(world):
    resource, points = world
    q = resource.find_nearby(10.0, 10.0, 200).attrs["geo_query"]
    assert q.partition is not None and q.read < len(points) / 50


# -- the dashboard (headless) -------------------------------------------------------------------------


@pytest.fixture
def view(request):
    db = s3db_nb.connect(f"memory://geo-dashboard-{request.node.name}")
    stores = db.create_resource("stores", STORE_FIELDS)
    geo = db.use_plugin(GeoPlugin(resources=GEO))
    stores.insert_many(
        [
            {"id": "a", "name": "<script>alert(1)</script>", "lat": -23.55, "lon": -46.63},
            {"id": "b", "name": "Paulista", "lat": -23.56, "lon": -46.65},
            {"id": "far", "name": "Santos", "lat": -23.96, "lon": -46.33},
        ]
    )
    yield geo.dashboard()
    db.disconnect()


def test_dashboard_is_found_through_the_plugin(view):
    assert isinstance(view, GeoDashboard)
    page = view.to_html()
    assert "stores" in page and "byGeohash" in page and "press Search" in page


def test_search_draws_circle_cells_and_escaped_results(view):
    df = view.search(-23.55, -46.63, 5)
    page = view.to_html()
    assert df["id"].tolist() == ["a", "b"]
    assert "<svg" in page and "<ellipse" in page and "stroke-dasharray" in page  # circle and cells
    assert "Paulista" in page and "Santos" not in page
    assert "&lt;script&gt;" in page and "<script>alert" not in page


def test_search_button_changes_the_view(view):
    widget = view.widget
    assert view.lat_input.value == pytest.approx(-23.55)  # starts at the first record
    before = view._body.value
    view.radius_input.value = 100
    view.search_button.click()
    assert view.last_error is None and view._body.value != before
    assert "Santos" in view._body.value and widget.children[-1] is view._body


def test_without_ipyleaflet_the_map_says_which_extra(view, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_leaflet(name, *args, **kwargs):
        if name == "ipyleaflet":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_leaflet)
    with pytest.raises(MissingDependencyError, match="geo-map"):
        view.leaflet_map()
    assert len(view.widget.children) == 3 and view.map is None


def test_with_ipyleaflet_the_live_view_adds_a_map_of_the_search(view, monkeypatch):
    import sys
    import types

    import ipywidgets

    class Layer:
        def __init__(self, **options):
            self.options = options

    class LayerGroup(Layer):
        layers = ()

    class Map(ipywidgets.Box):  # a widget, so it can sit in the dashboard's layout
        def __init__(self, **options):
            super().__init__()
            self.options, self.added = options, []

        def add(self, layer):
            self.added.append(layer)

    fake = types.ModuleType("ipyleaflet")
    fake.Map, fake.LayerGroup, fake.Rectangle, fake.Circle, fake.CircleMarker = Map, LayerGroup, Layer, Layer, Layer
    monkeypatch.setitem(sys.modules, "ipyleaflet", fake)
    assert view.widget.children[-1] is view.map
    view.radius_input.value = 5
    view.search_button.click()
    layers = view.map.added[0].layers
    assert [layer.options["radius"] for layer in layers if "bounds" not in layer.options][0] == 5000  # the query circle, in metres
    assert sum("bounds" in layer.options for layer in layers) == len(view.query.cells)


def test_distances_agree_with_the_spherical_law_of_cosines():
    rng = random.Random(5)
    for _ in range(100):
        a, b = (rng.uniform(-90, 90), rng.uniform(-180, 180)), (rng.uniform(-90, 90), rng.uniform(-180, 180))
        p1, p2, dl = math.radians(a[0]), math.radians(b[0]), math.radians(b[1] - a[1])
        cosines = 6371 * math.acos(max(-1.0, min(1.0, math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl))))
        assert haversine_km(*a, *b) == pytest.approx(cosines, abs=1e-6)


def test_an_empty_answer_has_the_resource_columns(stores):
    stores.insert({"id": "far", "name": "x", "lat": 10.0, "lon": 10.0})
    empty = stores.find_nearby(-60.0, 100.0, radius_km=1)
    assert empty.empty
    assert {"id", "name", "lat", "lon", "_distance_km"} <= set(empty.columns)
