"""MLPlugin: models reach stated errors on data with a known relation, versions round-trip
through the bucket (file and the moto server) and predict the same after reconnecting,
rollback, a tampered or untrusted model file is refused, bad input gets a clear error,
``resource.ml.learn`` picks the problem type and features, auto-training runs on the leader
only, and the dashboard draws the active version.

Datasets are small (≤ 150 rows) and seeded.
"""

from __future__ import annotations

import hashlib
import io
import math

import numpy as np
import pandas as pd
import pytest

import s3db_nb
from s3db_nb.errors import InvalidArgumentError, NotFoundError, PluginError, S3DBError
from s3db_nb.plugins.ml import MLPlugin, ModelInputError, ModelIntegrityError, ModelNotFoundError

ROUND_TRIP = pytest.mark.parametrize(
    "plugin_backend", ["file", pytest.param("s3-moto", marks=pytest.mark.s3)], indirect=True, ids=["file", "s3-moto"]
)


def linear_rows(n: int = 80, seed: int = 0) -> list[dict]:
    """y = 3x + 2 + N(0, 0.5²), x uniform on [0, 10]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    y = 3 * x + 2 + rng.normal(0, 0.5, n)
    return [{"x": float(a), "y": float(b), "tag": "even" if i % 2 else "odd"} for i, (a, b) in enumerate(zip(x, y))]


def blob_rows(n: int = 80, seed: int = 1) -> list[dict]:
    """Two Gaussian blobs 8 standard deviations apart: linearly separable."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "red" if i % 2 else "blue"
        centre = (4.0, 4.0) if label == "red" else (-4.0, -4.0)
        a, b = rng.normal(centre, 1.0)
        rows.append({"a": float(a), "b": float(b), "colour": label})
    return rows


def seasonal_rows(n: int = 120, seed: int = 2) -> list[dict]:
    """10·sin(2πt/12) + N(0, 0.3²), one point a day."""
    rng = np.random.default_rng(seed)
    return [
        {"day": f"2025-{1 + t // 28:02d}-{1 + t % 28:02d}", "sales": float(10 * math.sin(2 * math.pi * t / 12) + rng.normal(0, 0.3))}
        for t in range(n)
    ]


def make_db(name: str = "ml") -> s3db_nb.Database:
    return s3db_nb.connect(f"memory://{name}-{np.random.default_rng().integers(1 << 40)}")


def points(db, rows=None):
    resource = db.create_resource("points", attributes={"x": "number", "y": "number", "tag": "string"})
    resource.insert_many(rows or linear_rows())
    return resource


LINEAR = {"type": "regression", "resource": "points", "features": ["x"], "target": "y"}


# -- accuracy on known relations ------------------------------------------------------------------


def test_regression_learns_a_linear_relation():
    db = make_db()
    points(db)
    plugin = db.use_plugin(MLPlugin(models={"line": LINEAR}))
    entry = plugin.train("line")
    assert entry["metrics"]["r2"] > 0.95
    assert entry["metrics"]["mae"] < 0.8  # noise σ = 0.5 → E|e| ≈ 0.4
    assert entry["metrics"]["mae"] < entry["metrics"]["baseline_mae"] / 5
    assert entry["train_samples"] == 64 and entry["test_samples"] == 16 and entry["version"] == 1
    assert abs(plugin.predict("line", {"x": 4}) - 14) < 0.5
    many = plugin.predict("line", [{"x": 0}, {"x": 10}])
    assert abs(many[0] - 2) < 0.6 and abs(many[1] - 32) < 0.6
    frame = pd.DataFrame({"x": [1.0, 2.0]}, index=["a", "b"])
    series = plugin.predict("line", frame)
    assert list(series.index) == ["a", "b"] and series.name == "y" and abs(series["b"] - 8) < 0.5
    assert set(entry["importances"]) == {"x"} and entry["importances"]["x"] > 1
    assert len(entry["evaluation"]["actual"]) == 16


def test_polynomial_regression_fits_a_parabola():
    db = make_db()
    rng = np.random.default_rng(3)
    xs = rng.uniform(-3, 3, 80)
    points(db, [{"x": float(x), "y": float(x * x + rng.normal(0, 0.2)), "tag": "t"} for x in xs])
    plugin = db.use_plugin(MLPlugin(models={"flat": LINEAR, "curve": {**LINEAR, "model_config": {"polynomial": 2}}}))
    flat, curve = plugin.train("flat"), plugin.train("curve")
    assert flat["metrics"]["r2"] < 0.3 < 0.95 < curve["metrics"]["r2"]


def test_classification_separates_two_blobs():
    db = make_db()
    db.create_resource("blobs", attributes={"a": "number", "b": "number", "colour": "string"}).insert_many(blob_rows())
    plugin = db.use_plugin(
        MLPlugin(models={"colour": {"type": "classification", "resource": "blobs", "features": ["a", "b"], "target": "colour"}})
    )
    entry = plugin.train("colour")
    assert entry["metrics"]["accuracy"] > 0.95 and entry["classes"] == ["blue", "red"]
    assert plugin.predict("colour", {"a": 3.5, "b": 4.2}) == "red"
    assert plugin.predict("colour", [{"a": -4, "b": -3}]) == ["blue"]
    proba = plugin.predict_proba("colour", {"a": 4, "b": 4})
    assert list(proba.columns) == ["blue", "red"] and proba.iloc[0]["red"] > 0.9


def test_timeseries_beats_the_naive_forecast_on_a_seasonal_series():
    db = make_db()
    db.create_resource("sales", attributes={"day": "string", "sales": "number"}).insert_many(seasonal_rows())
    spec = {"type": "timeseries", "resource": "sales", "target": "sales", "model_config": {"time_field": "day", "lookback": 12}}
    plugin = db.use_plugin(MLPlugin(models={"season": spec}))
    entry = plugin.train("season")
    metrics = entry["metrics"]
    assert metrics["mae"] < metrics["naive_mae"] / 2, metrics  # the last value as forecast is far worse
    assert metrics["mae"] < 0.6
    truth = [10 * math.sin(2 * math.pi * t / 12) for t in range(120, 123)]
    forecast = plugin.forecast("season", 3)
    assert all(abs(f - t) < 1.5 for f, t in zip(forecast, truth)), (forecast, truth)
    history = [10 * math.sin(2 * math.pi * t / 12) for t in range(12)]
    assert abs(plugin.predict("season", history) - 10 * math.sin(2 * math.pi * 12 / 12)) < 1.0
    with pytest.raises(ModelInputError, match="last 12 values"):
        plugin.predict("season", history[:5])


def test_neural_network_regression_and_classification():
    db = make_db()
    points(db, linear_rows(120))
    db.create_resource("blobs", attributes={"a": "number", "b": "number", "colour": "string"}).insert_many(blob_rows(60))
    config = {"units": [16], "epochs": 300, "learning_rate": 0.01}
    plugin = db.use_plugin(
        MLPlugin(
            models={
                "nn": {"type": "neural-network", "resource": "points", "features": ["x"], "target": "y", "model_config": config},
                "nnc": {"type": "neural-network", "resource": "blobs", "features": ["a", "b"], "target": "colour", "model_config": config},
            }
        )
    )
    regression = plugin.train("nn")
    assert regression["kind"] == "regression" and regression["estimator"] == "TransformedTargetRegressor"
    assert regression["metrics"]["r2"] > 0.9
    classification = plugin.train("nnc")
    assert classification["kind"] == "classification" and classification["estimator"] == "MLPClassifier"
    assert classification["metrics"]["accuracy"] > 0.95
    assert plugin.predict("nnc", {"a": -4, "b": -4}) == "blue"
    plugin.uninstall()
    fresh = db.use_plugin(MLPlugin())  # MLP files hold an optimizer type that skops asks about: it is trusted
    assert fresh.predict("nnc", {"a": 4, "b": 4}) == "red"


# -- versions in the bucket ----------------------------------------------------------------------


@ROUND_TRIP
def test_versions_round_trip_through_the_bucket(plugin_reconnect):
    db = plugin_reconnect()
    resource = points(db, linear_rows(40))
    plugin = db.use_plugin(MLPlugin(models={"line": {**LINEAR, "save_training_data": True}}))
    events = []
    plugin.on("plg:ml:model-trained", events.append)
    v1 = plugin.train("line")
    resource.insert_many([{"x": float(x), "y": float(-x), "tag": "odd"} for x in np.linspace(0, 10, 40)])  # the relation changes
    v2 = plugin.train("line")
    assert [e["version"] for e in events] == [1, 2] and v2["samples"] == 80
    versions = plugin.list_model_versions("line")
    assert [(v["version"], v["active"]) for v in versions] == [(1, False), (2, True)]
    stored = db.client.get(v2["key"]).body
    assert hashlib.sha256(stored).hexdigest() == v2["sha256"] == versions[1]["sha256"]
    assert v2["key"] == "resource=points/plugin=ml/models/line/v2.skops"
    saved = pd.read_parquet(io.BytesIO(db.client.get(v2["training_data_key"]).body))
    assert list(saved.columns) == ["x", "y"] and len(saved) == 80
    probe = [{"x": 1.0}, {"x": 7.5}]
    before = plugin.predict("line", probe)

    other = plugin_reconnect()  # another process: no model options, everything comes from the bucket
    reader = other.use_plugin(MLPlugin())
    assert reader.list_models() == ["line"]
    assert reader.predict("line", probe) == pytest.approx(before, abs=1e-9)
    assert other.resource("points").ml.list() == ["line"]

    comparison = plugin.compare_versions("line", 1, 2)
    assert comparison["metrics"]["r2"]["better"] == 1  # the mixed data fits a line worse
    rolled = plugin.rollback("line")
    assert rolled["version"] == 1 and plugin.get_model_stats("line")["active_version"] == 1
    assert plugin.predict("line", {"x": 4}) == pytest.approx(14, abs=0.6)
    assert reader.predict("line", {"x": 4}) != pytest.approx(14, abs=0.6)  # cached until reload
    reader.reload("line")
    assert reader.predict("line", {"x": 4}) == pytest.approx(plugin.predict("line", {"x": 4}), abs=1e-9)
    assert [v["active"] for v in reader.list_model_versions("line")] == [True, False]
    assert v1["metrics"] == reader.get_version("line", 1)["metrics"]


@ROUND_TRIP
def test_a_tampered_model_file_is_refused(plugin_reconnect):
    db = plugin_reconnect()
    points(db, linear_rows(40))
    plugin = db.use_plugin(MLPlugin(models={"line": LINEAR}))
    v1, v2 = plugin.train("line"), plugin.train("line")
    # someone swaps v2's file for v1's (a valid skops file, but not the one trained as v2)
    db.client.put(v2["key"], db.client.get(v1["key"]).body)
    reader = plugin_reconnect().use_plugin(MLPlugin())
    with pytest.raises(ModelIntegrityError, match="changed after training") as caught:
        reader.predict("line", {"x": 1})
    assert isinstance(caught.value, S3DBError) and "line" in str(caught.value)
    with pytest.raises(ModelIntegrityError):
        reader.load_model_version("line", 2)
    plugin.rollback("line", 1)  # the intact version still loads
    with pytest.raises(ModelIntegrityError):
        plugin.rollback("line", 2)  # and the tampered one cannot come back
    assert plugin.get_model_stats("line")["active_version"] == 1


class NotAModel:
    """A type no allow-list names: skops must not build it from a bucket file."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def test_a_model_file_with_an_untrusted_type_is_refused():
    import skops.io as sio

    db = make_db()
    points(db, linear_rows(30))
    plugin = db.use_plugin(MLPlugin(models={"line": LINEAR}))
    entry = plugin.train("line")
    evil = sio.dumps(NotAModel())
    db.client.put(entry["key"], evil)
    storage = plugin.get_storage()
    key = storage.get_plugin_key("points", "metadata", "line", "sklearn-versions")
    index = storage.get(key)
    index["versions"][0]["sha256"] = hashlib.sha256(evil).hexdigest()  # the attacker fixed the hash too
    storage.set(key, index, behavior="body-only")
    reader = db.use_plugin(MLPlugin(), name="reader")
    with pytest.raises(ModelIntegrityError, match="NotAModel"):
        reader.predict("line", {"x": 1})


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_gets_clear_errors():
    db = make_db()
    resource = points(db, linear_rows(30))
    db.create_resource("words", attributes={"x": "number", "word": "string"}).insert_many(
        [{"x": float(i), "word": f"w{i % 3}"} for i in range(20)]
    )
    plugin = db.use_plugin(
        MLPlugin(
            models={"line": LINEAR, "words": {"type": "regression", "resource": "words", "features": ["x"], "target": "word"}},
            min_training_samples=10,
        )
    )
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'; known models: line, words") as caught:
        plugin.predict("nope", {"x": 1})
    assert isinstance(caught.value, NotFoundError)
    with pytest.raises(ModelNotFoundError, match=r"no trained version yet; call train\('line'\)"):
        plugin.predict("line", {"x": 1})
    with pytest.raises(ModelInputError, match=r"target 'word' must be numeric.*type='classification'") as caught:
        plugin.train("words")
    assert isinstance(caught.value, InvalidArgumentError)
    plugin.train("line")
    with pytest.raises(ModelInputError, match=r"lack field\(s\) \['x'\]; fields present: z"):
        plugin.predict("line", {"z": 1})
    with pytest.raises(ModelInputError, match="feature 'x' must be a number"):
        plugin.predict("line", {"x": "ten"})
    with pytest.raises(ModelInputError, match="feature 'x' is missing"):
        plugin.predict("line", [{"x": 1}, {"x": None}])
    with pytest.raises(ModelInputError, match="predict takes a record"):
        plugin.predict("line", 3.0)
    with pytest.raises(ModelNotFoundError, match="no version 9; versions: 1"):
        plugin.rollback("line", 9)
    with pytest.raises(ModelNotFoundError, match="no version older"):
        plugin.rollback("line")
    resource.delete_many(resource.list_ids()[5:])
    with pytest.raises(ModelInputError, match="5 usable record.*min_training_samples=10"):
        plugin.train("line")


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ({"m": {**LINEAR, "type": "svm"}}, r"\['type'\] must be one of regression, classification"),
        ({"m": {**LINEAR, "features": "x"}}, r"\['features'\] must be a list"),
        ({"m": {**LINEAR, "feature": ["x"]}}, r"unknown option\(s\) \['feature'\]"),
        ({"m": {**LINEAR, "model_config": {"polynomial": 9}}}, "polynomial'] must be an integer from 1 to 5"),
        ({"m": {**LINEAR, "model_config": {"algorithm": "svm"}}}, "algorithm'] must be one of linear, ridge"),
        ({"m": {**LINEAR, "features": ["y"]}}, "cannot also be a feature"),
        ({"m": {"type": "timeseries", "resource": "r", "target": "y"}}, "time_field'] must name the field"),
        ({"m": {**LINEAR, "train_after_inserts": -1}}, "train_after_inserts'] must be a number"),
    ],
)
def test_bad_options_fail_at_construction(models, message):
    with pytest.raises(PluginError, match=message):
        MLPlugin(models=models)


# -- learn -----------------------------------------------------------------------------------------


def test_learn_detects_the_problem_type_and_the_features():
    db = make_db()
    rng = np.random.default_rng(5)
    rows = []
    for i in range(90):
        size = float(rng.uniform(10, 100))
        kind = ["flat", "house", "loft"][i % 3]
        price = size * 2 + {"flat": 0, "house": 50, "loft": 20}[kind]
        rows.append({"id": f"h{i:03d}", "name": f"listing {i}", "size": size, "kind": kind, "price": price})  # fixed ids: one split
    for row in rows:
        row["band"] = "high" if row["price"] > 120 else "low"
    homes = db.create_resource(
        "homes", attributes={"name": "string", "size": "number", "kind": "string", "price": "number", "band": "string"}
    )
    homes.insert_many(rows)
    plugin = db.use_plugin(MLPlugin())
    price = homes.ml.learn("price", exclude=["band"])
    assert price["model"] == "homes_price" and price["type"] == "regression"
    assert price["features"] == ["size", "kind"]  # "name" is an id-like text column: left out
    assert price["categorical_features"] == ["kind"] and price["metrics"]["r2"] > 0.99
    assert homes.ml.predict({"size": 50, "kind": "house"}, "price") == pytest.approx(150, abs=1)
    band = homes.ml.learn("band", features=["size", "kind"])
    assert band["type"] == "classification" and band["metrics"]["accuracy"] > 0.9
    assert homes.ml.list() == ["homes_band", "homes_price"]
    assert homes.ml.stats("band")["type"] == "classification"
    assert [v["version"] for v in homes.ml.versions("price")] == [1]
    assert homes.ml.train("price")["version"] == 2 and homes.ml.compare(1, 2, "price")["versions"] == [1, 2]
    assert homes.ml.rollback("price")["version"] == 1
    with pytest.raises(ModelInputError, match="name the one to use"):
        homes.ml.predict({"size": 1, "kind": "flat"})
    with pytest.raises(ModelInputError, match="has no field 'colour'"):
        homes.ml.learn("colour")
    assert plugin.get_model_stats("homes_price")["versions"] == 2


# -- auto-training -----------------------------------------------------------------------------------


def test_auto_train_after_inserts_runs_on_the_leader_only():
    name = f"ml-auto-{np.random.default_rng().integers(1 << 40)}"
    leader_db = s3db_nb.connect(f"memory://{name}")
    points(leader_db, linear_rows(20))
    follower_db = s3db_nb.connect(f"memory://{name}")  # a second kernel on the same bucket
    spec = {**LINEAR, "auto_train": True, "train_after_inserts": 5}
    leader = leader_db.use_plugin(MLPlugin(models={"line": spec}))
    follower = follower_db.use_plugin(MLPlugin(models={"line": spec}))
    assert leader.coordinator.tick() and not follower.coordinator.tick()
    more = linear_rows(10, seed=9)
    leader_db.resource("points").insert_many(more[:4])
    leader.wait()
    assert leader.list_model_versions("line") == []  # 4 inserts: not due yet
    leader_db.resource("points").insert(more[4])
    leader.wait()
    assert [v["version"] for v in leader.list_model_versions("line")] == [1]
    assert leader.stats["auto_trainings"] == 1 and leader.get_model_stats("line")["inserts_since_training"] == 0
    skipped = []
    follower.on("plg:ml:auto-train-skipped", skipped.append)
    follower_db.resource("points").insert_many(more[5:10])
    follower.wait()
    assert skipped == [{"model": "line", "reason": "not the training leader"}] and follower.stats["auto_train_skipped"] == 1
    assert [v["version"] for v in follower.list_model_versions("line")] == [1]
    assert follower.check_auto_train() == []  # still not the leader: the count stays due
    leader.coordinator.resign()
    assert follower.check_auto_train() == ["line"]  # the role was free: the follower took it and trained
    assert [v["version"] for v in leader.list_model_versions("line")] == [1, 2]


# -- dashboard -----------------------------------------------------------------------------------------


def test_dashboard_shows_versions_scatter_and_importances():
    db = make_db()
    points(db)
    db.create_resource("blobs", attributes={"a": "number", "b": "number", "colour": "string"}).insert_many(blob_rows(40))
    plugin = db.use_plugin(
        MLPlugin(
            models={
                "line": {**LINEAR, "features": ["x", "tag"]},
                "<colour>": {"type": "classification", "resource": "blobs", "features": ["a", "b"], "target": "colour"},
            }
        )
    )
    view = plugin.dashboard()
    assert "no model" not in view.to_html() and "not trained yet" in view.to_html()
    plugin.train("line")
    plugin.train("line")
    view.set_model("line")
    page = view.to_html()
    assert view.last_error is None
    assert "Versions" in page and "v2 ✓" in page and "v1" in page and "r2 by version" in page
    assert "Predicted vs actual (v2, held-out rows)" in page and page.count("<circle") >= 16
    assert "Feature importances" in page and ">x<" in page and ">tag<" in page
    plugin.train("<colour>")
    view.set_model("<colour>")
    page = view.to_html()
    assert "&lt;colour&gt;" in page and "<colour>" not in page
    assert "actual \\ predicted" in page and ">blue<" in page
    with pytest.raises(InvalidArgumentError, match="no model named 'x'"):
        view.set_model("x")
    _ = view.widget
    view._model_box.value = "line"
    assert "v2 ✓" in view._body.value and view._errors.value == ""


def test_evaluate_compares_versions_on_the_same_records_and_export_import():
    db = make_db()
    resource = points(db, linear_rows(40))
    plugin = db.use_plugin(MLPlugin(models={"line": LINEAR}))
    plugin.train("line")
    resource.insert_many([{"x": float(x), "y": float(3 * x + 12), "tag": "odd"} for x in np.linspace(0, 10, 40)])  # shifted up by 10
    plugin.train("line")
    old, new = plugin.evaluate("line", 1), plugin.evaluate("line", 2)
    assert old["samples"] == new["samples"] == 80
    assert new["mae"] < old["mae"]  # version 2 saw both groups; version 1 misses the shifted half by ≈ 10
    assert old["mae"] == pytest.approx(5, abs=0.7)
    clean = pd.DataFrame(linear_rows(30, seed=4))
    assert plugin.evaluate("line", 1, data=clean)["r2"] > 0.95
    exported = plugin.export_model("line", 1)
    target = make_db().use_plugin(MLPlugin())
    entry = target.import_model("copied", exported)
    assert entry["version"] == 1 and entry["metrics"] == plugin.get_version("line", 1)["metrics"]
    assert target.predict("copied", {"x": 4}) == pytest.approx(plugin.load_model_version("line", 1).predict(pd.DataFrame({"x": [4.0]}))[0])
    with pytest.raises(ModelIntegrityError, match="NotAModel"):
        import skops.io as sio

        target.import_model("evil", {"skops": sio.dumps(NotAModel()), "definition": LINEAR})
