"""``MLPlugin``: scikit-learn models trained on a resource's records, versioned in the bucket.

Each model names a resource, its features and a target; ``train`` reads the records (one
``to_pandas``), fits a scikit-learn pipeline on a training split, measures it on the held-out
rows and stores it as a new version::

    db.use_plugin(MLPlugin(models={"price": {"type": "regression", "resource": "houses", "features": ["area", "rooms"], "target": "price"}}))
    db.ml.train("price"); db.ml.predict("price", {"area": 80, "rooms": 3})  # version 1, then a prediction
    db.ml.list_model_versions("price"); db.ml.rollback("price", 1)
    houses.ml.learn("price")                  # problem type and features picked from the data

Types: ``regression`` (LinearRegression, optional polynomial expansion, ridge or random forest),
``classification`` (logistic regression or random forest), ``timeseries`` (a linear model over
``lookback`` lag features of the target, ordered by ``model_config["time_field"]``) and
``neural-network`` (MLPRegressor / MLPClassifier). Numeric features are standardised, text
features one-hot encoded.

Storage (PluginStorage of slug ``ml``): the model bytes at
``resource=<r>/plugin=ml/models/<model>/v<N>.skops`` (a skops file, never a pickle), the version
list with metrics and the sha256 of every file at ``…/metadata/<model>/sklearn-versions``, and a
pointer ``plugin=ml/models/<model>.json`` so another process finds learned models. The leaf names
differ from s3db.js's TF.js ones so a Node process never mistakes one for the other. A model is
loaded only when its bytes still hash to the recorded sha256 and every type skops cannot vouch
for is in ``TRUSTED_TYPES``; otherwise ``ModelIntegrityError``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import (
    ConflictError,
    Coordinator,
    InvalidArgumentError,
    NotFoundError,
    Plugin,
    PluginError,
    iso_ms,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from s3db_nb.plugin_api import Resource

MODEL_TYPES = ("regression", "classification", "timeseries", "neural-network")
#: options of one model, with their defaults (s3db.js names in snake_case)
MODEL_OPTIONS: dict[str, Any] = {
    "type": None, "resource": None, "features": None, "target": None, "partition": None, "auto_train": False, "train_interval": 0,
    "train_after_inserts": 0, "save_model": True, "save_training_data": False, "model_config": None,
}  # fmt: skip
#: model_config keys and defaults (``epochs``/``learning_rate``/``batch_size``/``units`` drive neural networks)
CONFIG_DEFAULTS: dict[str, Any] = {
    "algorithm": None,
    "polynomial": 1,
    "alpha": 1.0,
    "n_estimators": 100,
    "epochs": 200,
    "batch_size": 32,
    "learning_rate": 0.01,
    "units": [32, 16],
    "validation_split": 0.2,
    "lookback": 10,
    "time_field": None,
    "task": None,
    "random_state": 0,
}
ALGORITHMS = {
    "regression": ("linear", "ridge", "random-forest", "gradient-boosting"),
    "classification": ("logistic", "random-forest"),
    "timeseries": ("linear", "ridge"),
}
#: types skops does not trust by default that a model of this plugin may hold (nothing else loads)
TRUSTED_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)
#: held-out points kept with each version for the predicted-vs-actual chart
EVALUATION_POINTS = 200
_IMPORTANCE_ROWS = 300


class ModelNotFoundError(NotFoundError):
    """No model of that name, or it has no trained version yet."""


class ModelInputError(InvalidArgumentError):
    """Training data or prediction input the model cannot use (the message names the field)."""


class ModelIntegrityError(PluginError):
    """A stored model was changed after training, or holds a type that is not trusted."""


def _jsonable(value: Any) -> Any:
    """numpy scalars → Python, NaN/inf → None (the version list is JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- one model's definition ------------------------------------------------------------------


class ModelSpec:
    """A model's options, validated; ``kind`` is the estimator family (regression/classification)."""

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise PluginError(f"MLPlugin: a model name must be a non-empty string without '/', got {name!r}")
        if not isinstance(options, Mapping):
            raise PluginError(f"MLPlugin: models[{name!r}] must be a dict of options, got {type(options).__name__}")
        unknown = sorted(set(options) - set(MODEL_OPTIONS))
        if unknown:
            raise PluginError(f"MLPlugin: models[{name!r}] has unknown option(s) {unknown}; valid: {', '.join(MODEL_OPTIONS)}")
        o = {**MODEL_OPTIONS, **options}
        self.name = name
        where = f"MLPlugin: models[{name!r}]"
        if o["type"] not in MODEL_TYPES:
            raise PluginError(f"{where}['type'] must be one of {', '.join(MODEL_TYPES)}, got {o['type']!r}")
        self.type: str = o["type"]
        for field in ("resource", "target"):
            if not isinstance(o[field], str) or not o[field]:
                raise PluginError(f"{where}[{field!r}] must name a {'resource' if field == 'resource' else 'field'}, got {o[field]!r}")
        self.resource: str = o["resource"]
        self.target: str = o["target"]
        features = o["features"] if o["features"] is not None else []
        if isinstance(features, str) or not all(isinstance(f, str) and f for f in features):
            raise PluginError(f"{where}['features'] must be a list of field names, got {features!r}")
        if self.type != "timeseries" and not features:
            raise PluginError(f"{where}['features'] must list at least one field (or use resource.ml.learn(target) to pick them)")
        if self.target in features:
            raise PluginError(f"{where}: the target {self.target!r} cannot also be a feature")
        self.features: list[str] = list(features)
        partition = o["partition"]
        if partition is not None and not (isinstance(partition, Mapping) and isinstance(partition.get("name"), str)):
            raise PluginError(f"{where}['partition'] must be {{'name': <partition>, 'values': {{field: value}}}}, got {partition!r}")
        self.partition: dict[str, Any] | None = dict(partition) if partition else None
        for flag in ("auto_train", "save_model", "save_training_data"):
            if not isinstance(o[flag], bool):
                raise PluginError(f"{where}[{flag!r}] must be True or False, got {o[flag]!r}")
        self.auto_train: bool = o["auto_train"]
        self.save_model: bool = o["save_model"]
        self.save_training_data: bool = o["save_training_data"]
        for number in ("train_interval", "train_after_inserts"):
            value = o[number]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise PluginError(f"{where}[{number!r}] must be a number ≥ 0 (0 = off), got {value!r}")
        self.train_interval = float(o["train_interval"])
        self.train_after_inserts = int(o["train_after_inserts"])
        config = o["model_config"] or {}
        if not isinstance(config, Mapping):
            raise PluginError(f"{where}['model_config'] must be a dict, got {type(config).__name__}")
        self.config: dict[str, Any] = {**CONFIG_DEFAULTS, **config}
        self._check_config(where)

    def _check_config(self, where: str) -> None:
        c = self.config
        if not isinstance(c["polynomial"], int) or not 1 <= c["polynomial"] <= 5:
            raise PluginError(f"{where}['model_config']['polynomial'] must be an integer from 1 to 5, got {c['polynomial']!r}")
        if not isinstance(c["validation_split"], (int, float)) or not 0 <= c["validation_split"] < 1:
            raise PluginError(f"{where}['model_config']['validation_split'] must be in [0, 1), got {c['validation_split']!r}")
        if not isinstance(c["lookback"], int) or c["lookback"] < 1:
            raise PluginError(f"{where}['model_config']['lookback'] must be a positive integer, got {c['lookback']!r}")
        for key in ("epochs", "batch_size", "n_estimators"):
            if not isinstance(c[key], int) or isinstance(c[key], bool) or c[key] < 1:
                raise PluginError(f"{where}['model_config'][{key!r}] must be a positive integer, got {c[key]!r}")
        units = c["units"]
        units = [units] if isinstance(units, int) else units
        if not units or not all(isinstance(u, int) and u > 0 for u in units):
            raise PluginError(f"{where}['model_config']['units'] must be a positive integer or a list of them, got {c['units']!r}")
        c["units"] = list(units)
        if c["algorithm"] is not None and self.type != "neural-network":
            allowed = ALGORITHMS["timeseries" if self.type == "timeseries" else self.type]
            if c["algorithm"] not in allowed:
                raise PluginError(f"{where}['model_config']['algorithm'] must be one of {', '.join(allowed)}, got {c['algorithm']!r}")
        if c["task"] not in (None, "regression", "classification"):
            raise PluginError(f"{where}['model_config']['task'] must be 'regression' or 'classification', got {c['task']!r}")
        if self.type == "timeseries" and not isinstance(c["time_field"], str):
            raise PluginError(f"{where}['model_config']['time_field'] must name the field that orders the series (e.g. 'date')")

    @property
    def kind(self) -> str:
        """``regression`` or ``classification`` (a neural network without ``task`` decides on its data)."""
        if self.type in ("regression", "timeseries"):
            return "regression"
        if self.type == "classification":
            return "classification"
        return self.config["task"] or "unknown"

    def as_dict(self) -> dict[str, Any]:
        """The options this model was defined with (stored with its versions, so another process can load it)."""
        names = ("type", "resource", "features", "target", "partition", "auto_train", "train_interval", "train_after_inserts")
        return {**{n: getattr(self, n) for n in names}, "save_model": self.save_model, "save_training_data": self.save_training_data,
                "model_config": dict(self.config)}  # fmt: skip


# -- estimators --------------------------------------------------------------------------------


def _feature_kinds(df: pd.DataFrame, features: Sequence[str], model: str) -> tuple[list[str], list[str]]:
    import pandas as pd

    numeric, categorical = [], []
    for name in features:
        column = df[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            numeric.append(name)
        elif pd.api.types.is_string_dtype(column) or isinstance(column.dtype, pd.CategoricalDtype):
            sample = column.dropna()
            if len(sample) and not all(isinstance(v, str) for v in sample.head(50)):
                raise ModelInputError(f"model {model!r}: feature {name!r} holds lists or objects; use numbers or text")
            categorical.append(name)
        else:
            raise ModelInputError(f"model {model!r}: feature {name!r} has type {column.dtype}; use numbers, booleans or text")
    return numeric, categorical


def _preprocessor(numeric: list[str], categorical: list[str]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if numeric:
        parts.append(("num", StandardScaler(), numeric))
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), categorical))
    return ColumnTransformer(parts)


def _estimator(spec: ModelSpec, kind: str, rows: int) -> Any:
    c = spec.config
    seed = c["random_state"]
    algorithm = c["algorithm"]
    if spec.type == "neural-network":
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.preprocessing import StandardScaler

        common = {
            "hidden_layer_sizes": tuple(c["units"]),
            "max_iter": c["epochs"],
            "batch_size": min(c["batch_size"], max(1, rows)),
            "learning_rate_init": c["learning_rate"],
            "random_state": seed,
        }
        if kind == "classification":
            return MLPClassifier(**common)
        return TransformedTargetRegressor(regressor=MLPRegressor(**common), transformer=StandardScaler())
    if kind == "classification":
        if algorithm == "random-forest":
            from sklearn.ensemble import RandomForestClassifier

            return RandomForestClassifier(n_estimators=c["n_estimators"], random_state=seed)
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000)
    if algorithm == "random-forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=c["n_estimators"], random_state=seed)
    if algorithm == "gradient-boosting":
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=c["n_estimators"], random_state=seed)
    if algorithm == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=c["alpha"])
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def _pipeline(spec: ModelSpec, kind: str, numeric: list[str], categorical: list[str], rows: int) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures

    steps: list[tuple[str, Any]] = [("prep", _preprocessor(numeric, categorical))]
    if spec.config["polynomial"] > 1 and kind == "regression":
        steps.append(("poly", PolynomialFeatures(spec.config["polynomial"], include_bias=False)))
    steps.append(("model", _estimator(spec, kind, rows)))
    return Pipeline(steps)


def _lag_names(spec: ModelSpec) -> list[str]:
    series = [spec.target, *spec.features]
    return [f"{name}_lag_{k}" for k in range(1, spec.config["lookback"] + 1) for name in series]


def _lag_matrix(values: np.ndarray, lookback: int) -> np.ndarray:
    """Row t holds values[t-1], values[t-2], … values[t-lookback] (each with every series column)."""
    import numpy as np

    rows = [values[t - lookback : t][::-1].ravel() for t in range(lookback, len(values) + 1)]
    return np.asarray(rows, dtype=float).reshape(len(rows), -1)


def _looks_categorical(y: pd.Series) -> bool:
    import pandas as pd

    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return True
    values = y.dropna()
    integral = bool(len(values)) and bool(((values % 1) == 0).all())
    return integral and values.nunique() <= min(20, max(2, len(values) // 5))


def _metrics(kind: str, actual: Any, predicted: Any) -> dict[str, Any]:
    import numpy as np
    from sklearn import metrics

    if kind == "classification":
        return {
            "accuracy": float(metrics.accuracy_score(actual, predicted)),
            "f1_macro": float(metrics.f1_score(actual, predicted, average="macro", zero_division=0)),
        }
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    out = {
        "mae": float(metrics.mean_absolute_error(actual, predicted)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(actual, predicted))),
        "r2": float(metrics.r2_score(actual, predicted)) if len(actual) > 1 else None,
    }
    return out


# -- the plugin ------------------------------------------------------------------------------


class MLPlugin(Plugin):
    """Train, version and serve scikit-learn models over resources (see the module docstring).

    Options: ``models`` (name → model options: ``type``, ``resource``, ``features``, ``target``,
    ``partition`` ``{name, values}``, ``auto_train``, ``train_interval`` (seconds),
    ``train_after_inserts``, ``save_model``, ``save_training_data``, ``model_config``),
    ``min_training_samples`` (10), ``lease`` (seconds a training leader holds its role, 30), ``clock``
    (epoch seconds, for tests). Insert counts are kept per process; a follower that reaches
    ``train_after_inserts`` tries to take the role (1 GET) and skips while a live leader holds it.
    Events: ``plg:ml:model-trained``, ``plg:ml:prediction``, ``plg:ml:auto-train-skipped``.
    """

    defaults = {"models": {}, "min_training_samples": 10, "lease": 30.0, "clock": None}
    dependencies = {"scikit-learn": ">=1.3", "skops": ">=0.10"}
    extra = "ml"

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        super().__init__(options, **more)
        models = self.options["models"] or {}
        if not isinstance(models, Mapping):
            raise PluginError(f"MLPlugin: models must be a dict of name → options, got {type(models).__name__}")
        self.models: dict[str, ModelSpec] = {name: ModelSpec(name, spec) for name, spec in models.items()}
        minimum = self.options["min_training_samples"]
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 2:
            raise PluginError(f"MLPlugin: min_training_samples must be an integer ≥ 2, got {minimum!r}")
        clock = self.options["clock"]
        if clock is not None and not callable(clock):
            raise PluginError("MLPlugin: clock must be a callable returning epoch seconds, or None")
        self._clock: Callable[[], float] = clock or (lambda: dt.datetime.now(dt.UTC).timestamp())
        self._cache: dict[str, tuple[int, Any, dict[str, Any]]] = {}  # name → (version, estimator, entry)
        self._local: dict[str, dict[str, Any]] = {}  # indexes of save_model=False models
        self._local_bodies: dict[tuple[str, int], bytes] = {}  # and their model files
        self._inserts: dict[str, int] = {}
        self._last_trained: dict[str, float] = {}
        self._pending: list[Future[Any]] = []
        self._lock = threading.RLock()
        self._training: set[str] = set()
        self.coordinator: Coordinator | None = None
        self.stats: dict[str, int] = {"trainings": 0, "predictions": 0, "auto_trainings": 0, "auto_train_skipped": 0, "failures": 0}

    # -- lifecycle -------------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        for spec in self.models.values():
            self.when_resource(spec.resource, lambda resource, spec=spec: self._attach(resource, spec))
        for name in list(db.resources):
            self._attach_namespace(db.resource(name))
        self.add_database_hook("after_create_resource", self._attach_namespace)
        self.coordinator = Coordinator(self.get_storage(), "training", lease=float(self.options["lease"]), clock=self.options["clock"])
        for spec in self.models.values():
            if spec.auto_train and spec.train_interval > 0:
                self.schedule_interval(spec.train_interval, lambda spec=spec: self._auto_train(spec.name), name=f"train-{spec.name}")

    def on_stop(self) -> None:
        self.wait()

    def on_uninstall(self, purge_data: bool = False) -> None:
        if self.coordinator is not None and self.coordinator.is_leader:
            self.coordinator.resign()
        self._cache.clear()

    def _attach_namespace(self, resource: Resource) -> None:
        if "ml" not in resource.__dict__ and not resource.name.startswith("plg_"):
            self.add_resource_method(resource, "ml", ResourceML(self, resource.name))

    def _attach(self, resource: Resource, spec: ModelSpec) -> None:
        self._attach_namespace(resource)
        if spec.auto_train and spec.train_after_inserts > 0:

            def counted(record: Any, spec: ModelSpec = spec) -> None:
                self._count_insert(spec.name)

            self.add_hook(resource, "after_insert", counted)

    # -- model definitions --------------------------------------------------------------------------

    def spec(self, name: str) -> ModelSpec:
        """The definition of model ``name`` (from the options, ``learn`` or the bucket)."""
        if not isinstance(name, str):
            raise ModelInputError(f"a model name is a string, got {type(name).__name__}")
        if name in self.models:
            return self.models[name]
        pointer = self.get_storage().get(f"models/{name}.json")
        if pointer is None or not isinstance(pointer.get("definition"), Mapping):
            known = sorted(set(self.models) | set(self.stored_models()))
            raise ModelNotFoundError(f"no model named {name!r}; known models: {', '.join(known) or '(none)'}")
        spec = ModelSpec(name, pointer["definition"])
        self.models[name] = spec
        return spec

    def stored_models(self) -> list[str]:
        """Names of every model trained into this bucket (by any process), from the pointers (1 LIST)."""
        prefix = self.get_storage().full_key("models/")
        names = []
        for key in self.get_storage().list("models/"):
            leaf = key[len(prefix) :] if key.startswith(prefix) else key.rsplit("/", 1)[-1]
            if leaf.endswith(".json") and "/" not in leaf:
                names.append(leaf[: -len(".json")])
        return sorted(names)

    def list_models(self) -> list[str]:
        """Models defined in the options, learned here, or found in the bucket."""
        return sorted(set(self.models) | set(self.stored_models()))

    def add_model(self, name: str, options: Mapping[str, Any]) -> ModelSpec:
        """Define (or redefine) a model at run time; ``train(name)`` trains it."""
        spec = ModelSpec(name, options)
        self.models[name] = spec
        self._cache.pop(name, None)
        if self.database is not None:
            self.when_resource(spec.resource, lambda resource: self._attach(resource, spec))
        return spec

    # -- data ---------------------------------------------------------------------------------------

    def training_data(self, name: str) -> pd.DataFrame:
        """The records model ``name`` trains on (its partition only when it has one): 1 LIST per 1 000 + 1 GET each."""
        spec = self.spec(name)
        db = self._db()
        if spec.resource not in db:
            raise ModelNotFoundError(
                f"model {name!r}: resource {spec.resource!r} does not exist; create it or fix models[{name!r}]['resource']"
            )
        resource = db.resource(spec.resource)
        if spec.partition:
            return resource.to_pandas(
                partition=spec.partition["name"], partition_values=spec.partition.get("values") or {}, progress=False, json="string"
            )
        return resource.to_pandas(progress=False, json="string")

    def _check_columns(self, spec: ModelSpec, df: pd.DataFrame, *, with_target: bool) -> None:
        needed = [*spec.features, *([spec.target] if with_target else [])]
        if spec.type == "timeseries" and with_target:
            needed.append(spec.config["time_field"])
        missing = [f for f in needed if f not in df.columns]
        if missing:
            have = ", ".join(c for c in df.columns if c != "id") or "(no columns)"
            what = "the training records" if with_target else "the input"
            raise ModelInputError(f"model {spec.name!r}: {what} lack field(s) {missing}; fields present: {have}")

    # -- training ----------------------------------------------------------------------------------

    def train(self, name: str, *, data: pd.DataFrame | None = None) -> dict[str, Any]:
        """Fit model ``name`` on its resource's records (or ``data``) and store it as a new,
        active version; returns the version entry (metrics, samples, sha256...).

        Costs the read of the records, 1 PUT of the model, 1-2 GET/PUT of the version list."""
        spec = self.spec(name)
        df = self.training_data(name) if data is None else data
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning)
                estimator, entry, used = self._fit(spec, df)
        except Exception:
            self.stats["failures"] += 1
            raise
        entry = self._store_version(spec, estimator, entry, used)
        with self._lock:
            self._cache[name] = (entry["version"], estimator, entry)
            self._inserts[name] = 0
            self._last_trained[name] = self._clock()
            self.stats["trainings"] += 1
        self.emit(
            "plg:ml:model-trained", {"model": name, "version": entry["version"], "metrics": entry["metrics"], "samples": entry["samples"]}
        )
        return entry

    def _fit(self, spec: ModelSpec, df: pd.DataFrame) -> tuple[Any, dict[str, Any], pd.DataFrame]:
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise ModelInputError(f"model {spec.name!r}: data must be a pandas DataFrame, got {type(df).__name__}")
        self._check_columns(spec, df, with_target=True)
        columns = [*spec.features, spec.target] + ([spec.config["time_field"]] if spec.type == "timeseries" else [])
        used = df[columns].dropna()
        minimum = self.options["min_training_samples"]
        if len(used) < minimum:
            raise ModelInputError(
                f"model {spec.name!r}: {len(used)} usable record(s) (of {len(df)}; rows missing a feature or the target are left out), "
                f"fewer than min_training_samples={minimum}; insert more records or lower min_training_samples"
            )
        kind = spec.kind
        y = used[spec.target]
        if kind == "unknown":
            kind = "classification" if _looks_categorical(y) else "regression"
        if kind == "regression":
            if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
                raise ModelInputError(
                    f"model {spec.name!r}: target {spec.target!r} must be numeric for {spec.type} (it holds {y.dtype} values such as "
                    f"{y.iloc[0]!r}); use type='classification' for labels"
                )
        elif y.nunique() < 2:
            raise ModelInputError(f"model {spec.name!r}: target {spec.target!r} has a single class {y.iloc[0]!r}; classification needs ≥ 2")
        if spec.type == "timeseries":
            return self._fit_series(spec, used)
        numeric, categorical = _feature_kinds(used, spec.features, spec.name)
        X = used[spec.features]
        y = y.astype(float) if kind == "regression" else y.astype(str) if not pd.api.types.is_bool_dtype(y) else y
        X_train, X_test, y_train, y_test = self._split(spec, X, y, kind)
        model = _pipeline(spec, kind, numeric, categorical, len(X_train))
        converged = self._fit_quietly(model, X_train, y_train)
        entry = self._evaluate(kind, model, X_test, y_test, list(spec.features), len(X_train), X_test is not X_train)
        entry.update({"numeric_features": numeric, "categorical_features": categorical, "converged": converged})
        if kind == "classification":
            entry["classes"] = _jsonable(list(model.classes_))
        return model, entry, used

    def _fit_series(self, spec: ModelSpec, used: pd.DataFrame) -> tuple[Any, dict[str, Any], pd.DataFrame]:
        import pandas as pd
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        lookback = spec.config["lookback"]
        ordered = used.sort_values(spec.config["time_field"], kind="stable")
        series = [spec.target, *spec.features]
        for name in series:
            if not pd.api.types.is_numeric_dtype(ordered[name]) or pd.api.types.is_bool_dtype(ordered[name]):
                raise ModelInputError(f"model {spec.name!r}: series {name!r} must be numeric for a timeseries model")
        values = ordered[series].to_numpy(dtype=float)
        if len(values) <= lookback + 2:
            raise ModelInputError(f"model {spec.name!r}: {len(values)} points for lookback={lookback}; need at least {lookback + 3}")
        X = _lag_matrix(values[:-1], lookback)
        y = values[lookback:, 0]
        test = max(1, int(round(len(y) * spec.config["validation_split"]))) if spec.config["validation_split"] > 0 else 0
        cut = len(y) - test if test and len(y) - test >= 2 else len(y)
        names = _lag_names(spec)
        model = Pipeline([("scale", StandardScaler()), ("model", _estimator(spec, "regression", cut))])
        model.fit(pd.DataFrame(X[:cut], columns=names), y[:cut])
        held_X = pd.DataFrame(X[cut:] if cut < len(y) else X, columns=names)
        held_y = y[cut:] if cut < len(y) else y
        entry = self._evaluate("regression", model, held_X, held_y, names, cut, cut < len(y))
        naive = X[cut:, 0] if cut < len(y) else X[:, 0]  # the last value as the forecast
        entry["metrics"]["naive_mae"] = float(abs(naive - held_y).mean())
        entry["history"] = _jsonable(values[-lookback:].tolist())
        entry["last_time"] = _jsonable(str(ordered[spec.config["time_field"]].iloc[-1]))
        entry["converged"] = True
        return model, entry, used

    def _split(self, spec: ModelSpec, X: pd.DataFrame, y: pd.Series, kind: str) -> tuple[Any, Any, Any, Any]:
        from sklearn.model_selection import train_test_split

        fraction = spec.config["validation_split"]
        test = int(round(len(X) * fraction))
        if fraction <= 0 or test < 2 or len(X) - test < 2:
            return X, X, y, y  # too few rows to hold any out: measured on the training rows
        stratify = y if kind == "classification" and y.value_counts().min() >= 2 else None
        try:
            return train_test_split(X, y, test_size=test, random_state=spec.config["random_state"], stratify=stratify)
        except ValueError:  # a class too small for a stratified split
            return train_test_split(X, y, test_size=test, random_state=spec.config["random_state"])

    @staticmethod
    def _fit_quietly(model: Any, X: Any, y: Any) -> bool:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(X, y)
        return not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    def _evaluate(self, kind: str, model: Any, X: Any, y: Any, names: list[str], train_rows: int, held_out: bool) -> dict[str, Any]:
        import numpy as np
        from sklearn.inspection import permutation_importance

        predicted = model.predict(X)
        metrics = _metrics(kind, y, predicted)
        if kind == "regression":
            actual = np.asarray(y, dtype=float)
            metrics["baseline_mae"] = float(np.abs(actual - actual.mean()).mean())  # always predicting the mean
        rows = min(len(X), _IMPORTANCE_ROWS)
        importances: dict[str, float] = {}
        if rows >= 2:
            sample_X = X.iloc[:rows] if hasattr(X, "iloc") else X[:rows]
            sample_y = y.iloc[:rows] if hasattr(y, "iloc") else y[:rows]
            found = permutation_importance(model, sample_X, sample_y, n_repeats=3, random_state=0)
            importances = {n: float(v) for n, v in zip(names, found.importances_mean)}
        points = min(len(predicted), EVALUATION_POINTS)
        return {
            "kind": kind,
            "metrics": metrics,
            "samples": int(train_rows + (len(X) if held_out else 0)),
            "train_samples": int(train_rows),
            "test_samples": int(len(X)) if held_out else 0,
            "evaluated_on": "held-out rows" if held_out else "training rows",
            "importances": importances,
            "evaluation": {"actual": _jsonable(list(np.asarray(y)[:points])), "predicted": _jsonable(list(np.asarray(predicted)[:points]))},
        }

    # -- versions in the bucket ----------------------------------------------------------------------

    def _index_key(self, spec: ModelSpec) -> str:
        return self.get_storage().get_plugin_key(spec.resource, "metadata", spec.name, "sklearn-versions")

    def _model_key(self, spec: ModelSpec, version: int) -> str:
        return self.get_storage().get_plugin_key(spec.resource, "models", spec.name, f"v{version}.skops")

    def _read_index(self, spec: ModelSpec) -> tuple[dict[str, Any], str | None]:
        if not spec.save_model:
            return self._local.setdefault(spec.name, {"model": spec.name, "active": None, "versions": []}), None
        data, etag = self.get_storage().get_with_version(self._index_key(spec))
        return (data or {"model": spec.name, "active": None, "versions": []}), etag

    def _update_index(self, spec: ModelSpec, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` to the version list with If-Match, re-reading when another writer won."""
        storage = self.get_storage()
        for _ in range(20):
            index, etag = self._read_index(spec)
            change(index)
            if not spec.save_model:
                return index
            index["definition"] = spec.as_dict()
            if etag is None:
                written = storage.set_if_not_exists(self._index_key(spec), index, behavior="body-only")
            else:
                written = storage.set_if_version(self._index_key(spec), index, etag, behavior="body-only")
            if written is not None:
                return index
        raise ConflictError(f"model {spec.name!r}: the version list kept changing under 20 attempts; try again")

    def _store_version(self, spec: ModelSpec, estimator: Any, entry: dict[str, Any], used: pd.DataFrame) -> dict[str, Any]:
        import sklearn
        import skops.io as sio

        body = sio.dumps(estimator)
        index, _ = self._read_index(spec)
        version = max([v["version"] for v in index["versions"]] + [0]) + 1
        client = self._db().client
        if spec.save_model:
            while True:  # another process may train the same model: the first to create v<N> owns it
                try:
                    client.put(self._model_key(spec, version), body, content_type="application/octet-stream", if_none_match="*")
                    break
                except ConflictError:
                    version += 1
        entry = _jsonable(
            {
                **entry,
                "version": version,
                "type": spec.type,
                "target": spec.target,
                "features": list(spec.features),
                "estimator": type(getattr(estimator, "steps", [(None, estimator)])[-1][1]).__name__,
                "trained_at": iso_ms(dt.datetime.fromtimestamp(self._clock(), dt.UTC)),
                "sha256": hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "key": self._model_key(spec, version) if spec.save_model else None,
                "sklearn_version": sklearn.__version__,
            }
        )
        if spec.save_training_data and spec.save_model:
            key = self.get_storage().get_plugin_key(spec.resource, "training-data", spec.name, f"v{version}.parquet")
            buffer = io.BytesIO()
            used.reset_index(drop=True).to_parquet(buffer)
            client.put(key, buffer.getvalue(), content_type="application/vnd.apache.parquet")
            entry["training_data_key"] = key
        if not spec.save_model:
            self._local_bodies[(spec.name, version)] = body

        def append(index: dict[str, Any]) -> None:
            index["versions"] = [v for v in index["versions"] if v["version"] != version] + [entry]
            index["versions"].sort(key=lambda v: v["version"])
            index["active"] = version

        self._update_index(spec, append)
        if spec.save_model:
            self.get_storage().set(
                f"models/{spec.name}.json", {"resource": spec.resource, "definition": spec.as_dict()}, behavior="body-only"
            )
        return entry

    def _entry(self, spec: ModelSpec, version: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        index, _ = self._read_index(spec)
        if not index["versions"]:
            raise ModelNotFoundError(f"model {spec.name!r} has no trained version yet; call train({spec.name!r}) first")
        wanted = index["active"] if version is None else version
        for entry in index["versions"]:
            if entry["version"] == wanted:
                return entry, index
        have = ", ".join(str(v["version"]) for v in index["versions"])
        raise ModelNotFoundError(f"model {spec.name!r} has no version {wanted!r}; versions: {have}")

    def load_model_version(self, name: str, version: int | None = None) -> Any:
        """The estimator of ``version`` (default: the active one), read from the bucket and checked:
        its sha256 must match the one recorded at training and skops must trust every type in it."""
        spec = self.spec(name)
        entry, _ = self._entry(spec, version)
        return self._load(spec, entry)

    def _load(self, spec: ModelSpec, entry: dict[str, Any]) -> Any:
        import skops.io as sio

        version = entry["version"]
        if spec.save_model:
            try:
                body = self._db().client.get(entry["key"]).body
            except NotFoundError:
                raise ModelNotFoundError(
                    f"model {spec.name!r} version {version}: its file {entry['key']} is gone; retrain or roll back"
                ) from None
        else:
            body = self._local_bodies[(spec.name, version)]
        digest = hashlib.sha256(body).hexdigest()
        if digest != entry.get("sha256"):
            raise ModelIntegrityError(
                f"model {spec.name!r} version {version} was changed after training: {entry.get('key')} hashes to {digest[:12]}…, "
                f"the version list recorded {str(entry.get('sha256'))[:12]}…; it is not loaded. Retrain ({spec.name!r}) or roll back to another version"
            )
        try:
            untrusted = sio.get_untrusted_types(data=body)
        except Exception as exc:
            raise ModelIntegrityError(f"model {spec.name!r} version {version}: not a readable skops file ({exc})") from exc
        unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
        if unknown:
            raise ModelIntegrityError(
                f"model {spec.name!r} version {version} holds types this plugin does not trust: {', '.join(unknown)}; it is not loaded"
            )
        return sio.loads(body, trusted=list(untrusted))

    def _active(self, spec: ModelSpec, *, refresh: bool = False) -> tuple[Any, dict[str, Any]]:
        with self._lock:
            cached = self._cache.get(spec.name)
        if cached is not None and not refresh:
            return cached[1], cached[2]
        entry, _ = self._entry(spec, None)
        if cached is not None and cached[0] == entry["version"] and cached[2].get("sha256") == entry.get("sha256"):
            return cached[1], cached[2]
        estimator = self._load(spec, entry)
        with self._lock:
            self._cache[spec.name] = (entry["version"], estimator, entry)
        return estimator, entry

    def reload(self, name: str) -> dict[str, Any]:
        """Re-read the active version from the bucket (another process may have trained or rolled back)."""
        return self._active(self.spec(name), refresh=True)[1]

    def list_model_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version, oldest first: ``version, trained_at, samples, metrics, sha256, active`` (1 GET)."""
        spec = self.spec(name)
        index, _ = self._read_index(spec)
        keys = ("version", "trained_at", "estimator", "samples", "metrics", "sha256", "size")
        return [{**{k: v.get(k) for k in keys}, "active": v["version"] == index["active"]} for v in index["versions"]]

    def get_version(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The whole entry of ``version`` (default the active one): metrics, importances, evaluation points."""
        return dict(self._entry(self.spec(name), version)[0])

    def rollback(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Make ``version`` (default: the one before the active one) active again; it is loaded
        and checked first, so a tampered version is refused and the active one stays."""
        spec = self.spec(name)
        index, _ = self._read_index(spec)
        if version is None:
            older = [v["version"] for v in index["versions"] if index["active"] is not None and v["version"] < index["active"]]
            if not older:
                raise ModelNotFoundError(f"model {name!r} has no version older than the active one ({index['active']}) to roll back to")
            version = max(older)
        entry, _ = self._entry(spec, version)
        estimator = self._load(spec, entry)

        def activate(index: dict[str, Any]) -> None:
            index["active"] = version

        self._update_index(spec, activate)
        with self._lock:
            self._cache[name] = (version, estimator, entry)
        self.emit("plg:ml:rollback", {"model": name, "version": version})
        return dict(entry)

    def compare_versions(self, name: str, version_a: int, version_b: int) -> dict[str, Any]:
        """Metrics of two versions side by side, each with its change and which version is better."""
        spec = self.spec(name)
        a, _ = self._entry(spec, version_a)
        b, _ = self._entry(spec, version_b)
        lower_better = {"mae", "rmse"}
        rows = {}
        for metric in sorted(set(a["metrics"]) | set(b["metrics"])):
            va, vb = a["metrics"].get(metric), b["metrics"].get(metric)
            row: dict[str, Any] = {f"v{version_a}": va, f"v{version_b}": vb, "change": None, "better": None}
            if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
                row["change"] = vb - va
                if va != vb and not metric.endswith("baseline_mae") and metric != "naive_mae":  # baselines rank nothing
                    b_wins = vb < va if metric in lower_better else vb > va
                    row["better"] = version_b if b_wins else version_a
            rows[metric] = row
        return {
            "model": name,
            "versions": [version_a, version_b],
            "metrics": rows,
            "samples": {version_a: a["samples"], version_b: b["samples"]},
        }

    def evaluate(self, name: str, version: int | None = None, *, data: pd.DataFrame | None = None) -> dict[str, Any]:
        """Metrics of ``version`` (default the active one) on the resource's current records (or
        ``data``): unlike the stored metrics, each measured on its own held-out rows, versions
        evaluated on the same data compare fairly. Timeseries models are evaluated at training only."""
        spec = self.spec(name)
        if spec.type == "timeseries":
            raise ModelInputError(f"model {name!r}: evaluate() takes tabular models; a timeseries model's metrics are in get_version()")
        entry, _ = self._entry(spec, version)
        estimator = self._load(spec, entry)
        df = self.training_data(name) if data is None else data
        self._check_columns(spec, df, with_target=True)
        used = df[[*spec.features, spec.target]].dropna()
        if used.empty:
            raise ModelInputError(f"model {name!r}: no record has every feature and the target to evaluate on")
        y = used[spec.target]
        predicted = estimator.predict(self._feature_frame(spec, entry, used))
        if entry.get("kind") == "classification":
            y = y.astype(str) if not all(isinstance(c, bool) for c in entry.get("classes", [])) else y
        return {**_metrics(entry.get("kind", "regression"), y, predicted), "samples": len(used), "version": entry["version"]}

    def get_model_stats(self, name: str) -> dict[str, Any]:
        """Type, target, features, active version and its metrics, version count, last training."""
        spec = self.spec(name)
        index, _ = self._read_index(spec)
        active = next((v for v in index["versions"] if v["version"] == index["active"]), None)
        return {
            "model": name,
            "type": spec.type,
            "resource": spec.resource,
            "target": spec.target,
            "features": list(spec.features),
            "versions": len(index["versions"]),
            "active_version": index["active"],
            "metrics": dict(active["metrics"]) if active else {},
            "samples": active["samples"] if active else 0,
            "trained_at": active["trained_at"] if active else None,
            "inserts_since_training": self._inserts.get(name, 0),
            "predictions": self.stats["predictions"],
        }

    def export_model(self, name: str, version: int | None = None) -> dict[str, Any]:
        """``{"entry": version entry, "skops": bytes}`` of a checked version, for ``import_model`` elsewhere."""
        spec = self.spec(name)
        entry, _ = self._entry(spec, version)
        estimator = self._load(spec, entry)
        import skops.io as sio

        return {"definition": spec.as_dict(), "entry": dict(entry), "skops": sio.dumps(estimator)}

    def import_model(self, name: str, exported: Mapping[str, Any]) -> dict[str, Any]:
        """Store an ``export_model`` result as a new version of ``name`` (its types are checked first)."""
        import pandas as pd
        import skops.io as sio

        body = exported.get("skops") if isinstance(exported, Mapping) else None
        if not isinstance(body, (bytes, bytearray)):
            raise ModelInputError("import_model takes what export_model returned: a dict with 'skops' bytes and 'entry'")
        unknown = sorted(set(sio.get_untrusted_types(data=bytes(body))) - set(TRUSTED_TYPES))
        if unknown:
            raise ModelIntegrityError(f"import_model: the file holds types this plugin does not trust: {', '.join(unknown)}")
        spec = self.models.get(name) or self.add_model(name, exported.get("definition") or {})
        estimator = sio.loads(bytes(body), trusted=sorted(set(sio.get_untrusted_types(data=bytes(body)))))
        base = {k: v for k, v in dict(exported.get("entry") or {}).items() if k not in ("version", "sha256", "key", "size")}
        entry = self._store_version(spec, estimator, base, pd.DataFrame())
        with self._lock:
            self._cache[name] = (entry["version"], estimator, entry)
        return entry

    # -- prediction -----------------------------------------------------------------------------------

    def predict(self, name: str, input: Any) -> Any:
        """Predict with the active version: one record (dict) → one value; a list of records →
        a list; a DataFrame → a Series on its index. A timeseries model takes the latest values
        (a list of numbers, or records ordered by its time field) and predicts the next one."""
        spec = self.spec(name)
        estimator, entry = self._active(spec)
        frame, shape = self._input_frame(spec, input)
        if spec.type == "timeseries":
            values = self._series_input(spec, frame, input)
            import pandas as pd

            X = pd.DataFrame(_lag_matrix(values, spec.config["lookback"])[-1:], columns=_lag_names(spec))
            result: Any = float(estimator.predict(X)[0])
        else:
            X = self._feature_frame(spec, entry, frame)
            predicted = estimator.predict(X)
            result = self._shape(predicted, shape, frame, spec)
        self.stats["predictions"] += 1
        self.emit("plg:ml:prediction", {"model": name, "version": entry["version"], "count": 1 if shape == "one" else len(frame)})
        return result

    def predict_proba(self, name: str, input: Any) -> pd.DataFrame:
        """Class probabilities of a classification model: one row per input record, one column per class."""
        import pandas as pd

        spec = self.spec(name)
        estimator, entry = self._active(spec)
        if entry.get("kind") != "classification":
            raise ModelInputError(f"model {name!r} is a {entry.get('kind')} model; predict_proba needs a classification model")
        frame, _ = self._input_frame(spec, input)
        probabilities = estimator.predict_proba(self._feature_frame(spec, entry, frame))
        return pd.DataFrame(probabilities, columns=list(estimator.classes_), index=frame.index)

    def forecast(self, name: str, steps: int = 1, *, history: Any = None) -> list[float]:
        """The next ``steps`` values of a timeseries model without extra features, each fed back as
        the newest lag (``history`` default: the last values seen at training)."""
        import numpy as np

        spec = self.spec(name)
        if spec.type != "timeseries" or spec.features:
            raise ModelInputError(f"model {name!r}: forecast works on timeseries models without features; use predict()")
        if not isinstance(steps, int) or steps < 1:
            raise ModelInputError(f"forecast: steps must be a positive integer, got {steps!r}")
        _, entry = self._active(spec)
        values = (
            list(np.asarray(entry["history"], dtype=float)[:, 0])
            if history is None
            else list(self._series_input(spec, None, history)[:, 0])
        )
        out = []
        for _ in range(steps):
            nxt = self.predict(name, values[-spec.config["lookback"] :])
            out.append(nxt)
            values.append(nxt)
        return out

    def _input_frame(self, spec: ModelSpec, input: Any) -> tuple[pd.DataFrame, str]:
        import pandas as pd

        if isinstance(input, pd.DataFrame):
            return input, "frame"
        if isinstance(input, Mapping):
            return pd.DataFrame([dict(input)]), "one"
        if isinstance(input, (list, tuple)):
            if spec.type == "timeseries" and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in input):
                return pd.DataFrame({spec.target: list(input)}), "list"
            if not all(isinstance(v, Mapping) for v in input):
                raise ModelInputError(f"model {spec.name!r}: predict takes a record (dict), a list of records or a DataFrame")
            return pd.DataFrame([dict(v) for v in input]), "list"
        raise ModelInputError(
            f"model {spec.name!r}: predict takes a record (dict), a list of records or a DataFrame, got {type(input).__name__}"
        )

    def _feature_frame(self, spec: ModelSpec, entry: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        self._check_columns(spec, frame, with_target=False)
        X = frame[spec.features].copy()
        for name in entry.get("numeric_features", []):
            try:
                X[name] = pd.to_numeric(X[name], errors="raise").astype(float)
            except (ValueError, TypeError):
                raise ModelInputError(f"model {spec.name!r}: feature {name!r} must be a number, got {X[name].tolist()[:3]!r}") from None
            if X[name].isna().any():
                raise ModelInputError(
                    f"model {spec.name!r}: feature {name!r} is missing (None) in {int(X[name].isna().sum())} input row(s)"
                )
        for name in entry.get("categorical_features", []):
            X[name] = X[name].astype(object)
        return X

    def _series_input(self, spec: ModelSpec, frame: pd.DataFrame | None, input: Any) -> np.ndarray:
        import pandas as pd

        if frame is None:
            frame, _ = self._input_frame(spec, input)
        series = [spec.target, *spec.features]
        missing = [c for c in series if c not in frame.columns]
        if missing:
            raise ModelInputError(f"model {spec.name!r}: the input lacks {missing}; give the latest values of {series}")
        time_field = spec.config["time_field"]
        if time_field in frame.columns:
            frame = frame.sort_values(time_field, kind="stable")
        lookback = spec.config["lookback"]
        if len(frame) < lookback:
            raise ModelInputError(f"model {spec.name!r}: needs the last {lookback} values (lookback), got {len(frame)}")
        try:
            return frame[series].apply(pd.to_numeric, errors="raise").to_numpy(dtype=float)[-lookback:]
        except (ValueError, TypeError):
            raise ModelInputError(f"model {spec.name!r}: the series {series} must hold numbers") from None

    @staticmethod
    def _shape(predicted: Any, shape: str, frame: pd.DataFrame, spec: ModelSpec) -> Any:
        import pandas as pd

        values = [_jsonable(v) for v in predicted]
        if shape == "one":
            return values[0]
        if shape == "list":
            return values
        return pd.Series(values, index=frame.index, name=spec.target)

    # -- auto-training ----------------------------------------------------------------------------------

    def _count_insert(self, name: str) -> None:
        spec = self.models.get(name)
        if spec is None:
            return
        with self._lock:
            self._inserts[name] = self._inserts.get(name, 0) + 1
            due = self._inserts[name] >= spec.train_after_inserts and name not in self._training
            if due:
                self._training.add(name)
        if due:
            self._pending.append(self._db().pool.submit(self._auto_train_now, name))

    def _auto_train_now(self, name: str) -> dict[str, Any] | None:
        try:
            return self._auto_train(name)
        finally:
            with self._lock:
                self._training.discard(name)

    def _auto_train(self, name: str) -> dict[str, Any] | None:
        """Train ``name`` if this process leads the ``training`` role (a follower records a skip)."""
        if self.coordinator is None or not self.coordinator.tick():
            self.stats["auto_train_skipped"] += 1
            self.emit("plg:ml:auto-train-skipped", {"model": name, "reason": "not the training leader"})
            return None
        try:
            entry = self.train(name)
        except Exception:
            self.log.exception("auto-training of model %r failed", name)
            return None
        self.stats["auto_trainings"] += 1
        return entry

    def check_auto_train(self) -> list[str]:
        """Train, now and on the leader only, every auto-train model that is due (enough inserts
        counted, or its interval elapsed); returns the names trained. The hooks and jobs call this
        path; tests and notebooks may call it directly."""
        trained = []
        now = self._clock()
        for name, spec in self.models.items():
            if not spec.auto_train:
                continue
            by_count = spec.train_after_inserts > 0 and self._inserts.get(name, 0) >= spec.train_after_inserts
            by_time = spec.train_interval > 0 and now - self._last_trained.get(name, -math.inf) >= spec.train_interval
            if (by_count or by_time) and self._auto_train(name) is not None:
                trained.append(name)
        return trained

    def wait(self, timeout: float | None = None) -> None:
        """Wait for auto-trainings started by inserts to finish."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result(timeout=timeout)

    # -- learn --------------------------------------------------------------------------------------

    def learn(self, resource: Resource | str, target: str, *, name: str | None = None, **options: Any) -> dict[str, Any]:
        """Define a model for ``target`` from the data itself and train it (see ``ResourceML.learn``)."""
        res = self.resource(resource)
        df = res.to_pandas(progress=False, json="string")
        if target not in df.columns:
            raise ModelInputError(
                f"learn: resource {res.name!r} has no field {target!r}; fields: {', '.join(c for c in df.columns if c != 'id')}"
            )
        model_type = options.pop("type", None)
        config = dict(options.pop("model_config", None) or {})
        if options.get("time_field"):
            config["time_field"] = options.pop("time_field")
            model_type = model_type or "timeseries"
        features = options.pop("features", None)
        exclude = set(options.pop("exclude", ()) or ())
        if model_type is None:
            model_type = "classification" if _looks_categorical(df[target].dropna()) else "regression"
        if features is None:
            features = detect_features(df, target, exclude | ({config["time_field"]} if config.get("time_field") else set()))
            if model_type == "timeseries":
                features = []
        name = name or f"{res.name}_{target}"
        spec = self.add_model(
            name, {"type": model_type, "resource": res.name, "features": features, "target": target, "model_config": config, **options}
        )
        entry = self.train(spec.name, data=df)
        return {**entry, "model": spec.name}


def detect_features(df: pd.DataFrame, target: str, exclude: set[str]) -> list[str]:
    """Columns worth learning from: numbers, booleans and low-cardinality text; not ids, not
    the target, not ``_``-prefixed plugin fields, not constant columns."""
    import pandas as pd

    picked = []
    rows = max(1, len(df))
    for column in df.columns:
        if column in exclude or column in ("id", target) or str(column).startswith("_"):
            continue
        series = df[column].dropna()
        if series.nunique() < 2 or len(series) < rows * 0.5:
            continue
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            picked.append(column)
        elif pd.api.types.is_string_dtype(series) and all(isinstance(v, str) for v in series.head(50)):
            if series.nunique() <= max(2, min(30, rows // 5)):
                picked.append(column)
    if not picked:
        raise ModelInputError(f"learn: no usable feature for {target!r} (numbers, booleans or text with few values); pass features=[...]")
    return picked


class ResourceML:
    """``resource.ml``: the plugin's methods for one resource (s3db.js ``resource.ml.*``)."""

    def __init__(self, plugin: MLPlugin, resource: str) -> None:
        self._plugin = plugin
        self.resource = resource

    def __repr__(self) -> str:
        return f"<ResourceML resource={self.resource!r} models={self.list()}>"

    def _model(self, target: str | None) -> str:
        names = self.list()
        if target is None:
            if len(names) == 1:
                return names[0]
            raise ModelInputError(f"resource {self.resource!r} has models {names or '(none)'}; name the one to use")
        if target in names:
            return target
        by_target = [n for n in names if self._plugin.spec(n).target == target]
        if not by_target:
            raise ModelNotFoundError(
                f"resource {self.resource!r} has no model {target!r} (models: {', '.join(names) or 'none'}); learn({target!r}) first"
            )
        return by_target[-1]

    def learn(self, target: str, **options: Any) -> dict[str, Any]:
        """Detect the problem type (labels → classification, numbers → regression; ``time_field=``
        → timeseries) and the features, define ``<resource>_<target>`` and train it."""
        return self._plugin.learn(self.resource, target, **options)

    def predict(self, input: Any, target: str | None = None) -> Any:
        """Predict with this resource's model for ``target`` (or its only model)."""
        return self._plugin.predict(self._model(target), input)

    def train(self, target: str | None = None) -> dict[str, Any]:
        return self._plugin.train(self._model(target))

    def list(self) -> list[str]:
        """Models of this resource (defined here or found in the bucket)."""
        plugin = self._plugin
        out = []
        for name in plugin.list_models():
            try:
                if plugin.spec(name).resource == self.resource:
                    out.append(name)
            except NotFoundError:
                continue
        return out

    def versions(self, target: str | None = None) -> list[dict[str, Any]]:
        return self._plugin.list_model_versions(self._model(target))

    def rollback(self, target: str | None = None, version: int | None = None) -> dict[str, Any]:
        return self._plugin.rollback(self._model(target), version)

    def compare(self, version_a: int, version_b: int, target: str | None = None) -> dict[str, Any]:
        return self._plugin.compare_versions(self._model(target), version_a, version_b)

    def stats(self, target: str | None = None) -> dict[str, Any]:
        return self._plugin.get_model_stats(self._model(target))
