"""GeoPlugin under the names the s3db.js 21.x Geo docs use (the seeds only list the plugin), ported
mechanically: camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped.
"""

from __future__ import annotations

import pytest

import s3db_nb
from s3db_nb.plugins import GeoPlugin
from s3db_nb.plugins.geo import encode_geohash

STORES = [
    {"id": "se", "name": "Sé", "lat": -23.5505, "lon": -46.6333},
    {"id": "paulista", "name": "Paulista", "lat": -23.5614, "lon": -46.6559},
    {"id": "rio", "name": "Rio", "lat": -22.9068, "lon": -43.1729},
]


@pytest.fixture
def database(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path}/db")
    yield db
    db.disconnect()


def make_stores(db, **config):
    db.use_plugin(GeoPlugin(resources={"stores": {"lat_field": "lat", "lon_field": "lon", "precision": 6, **config}}))
    stores = db.create_resource("stores", attributes={"name": "string", "lat": "number", "lon": "number"})
    stores.insert_many(STORES)
    return stores


def test_add_geohash_stores_a_geohash_field(database):
    """resources: { stores: { latField, lonField, precision: 6, addGeohash: true } } → record.geohash."""
    stores = make_stores(database, add_geohash=True)
    assert stores.get("se")["geohash"] == encode_geohash(-23.5505, -46.6333, 6)


def test_find_nearby_with_radius(database):
    """stores.findNearby({ lat, lon, radius: 5, limit: 10 }) → nearest first, each with _distance (km)."""
    stores = make_stores(database)
    nearby = stores.find_nearby(lat=-23.55, lon=-46.63, radius=5, limit=10)
    assert list(nearby["id"]) == ["se", "paulista"]
    assert nearby["_distance"].iloc[0] < 1 and (nearby["_distance"] == nearby["_distance_km"]).all()


def test_get_distance_result_shape(database):
    """stores.getDistance('se', 'rio') → { distance, unit: 'km', from: 'se', to: 'rio' }."""
    stores = make_stores(database)
    result = stores.get_distance("se", "rio")
    assert result["unit"] == "km" and result["from"] == "se" and result["to"] == "rio"
    assert result["distance"] == pytest.approx(361, rel=0.02)
    assert result.to_dict() == {"distance": float(result), "unit": "km", "from": "se", "to": "rio"}
