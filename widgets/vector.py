"""``VectorDashboard``: the nearest neighbours of a query record and a 2-D map of the vectors.

The map is a PCA projection (numpy SVD) of up to ``sample`` vectors, coloured by a seeded
k-means clustering, with the query as a star and its neighbours circled. Controls pick the
resource, the field, k, the metric, the query record and the number of clusters::

    view = db.plugins.vector.dashboard()
    view.set_query("doc-42")           # or a vector
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s3db_nb.plugin_api import InvalidArgumentError
from s3db_nb.plugins.vector import DISTANCE_COLUMN, kmeans, pca_2d

from . import svg
from .base import Dashboard, html_table, section, stat_cards

PREVIEW_CHARS = 60


def _preview(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return f"[{len(value)} values]"
    if isinstance(value, str) and len(value) > PREVIEW_CHARS:
        return value[: PREVIEW_CHARS - 1] + "…"
    return value


class VectorDashboard(Dashboard):
    """Nearest-neighbour table and PCA scatter for a ``VectorPlugin``."""

    title = "Vector search"

    def __init__(self, plugin: Any, *, k: int = 5, clusters: int = 3, sample: int = 500) -> None:
        super().__init__(plugin)
        fields = plugin.fields()
        self.resource: str | None = fields[0].resource if fields else None
        self.field: str | None = fields[0].path if fields else None
        self.k = k
        self.metric: str = plugin.options["distance_metric"]
        self.clusters = clusters
        self.sample = sample
        self.query_id: str | None = None
        self.query_vector: np.ndarray | None = None

    def set_query(self, query: Any) -> None:
        """Search around a record id (str) or a vector, then redraw."""
        if isinstance(query, str):
            self.query_id, self.query_vector = query, None
        else:
            self.query_id, self.query_vector = None, np.asarray(query, dtype=np.float32)
        if self._query_box is not None:
            self._query_box.value = self.query_id or ""
        self.refresh()

    _query_box: Any = None

    # -- data ---------------------------------------------------------------------------------

    def _query(self, ids: list[str], matrix: np.ndarray) -> tuple[str, np.ndarray]:
        if self.query_vector is not None:
            return "(vector)", self.query_vector
        wanted = self.query_id or ids[0]
        if wanted in ids:
            return wanted, matrix[ids.index(wanted)]
        record = self.plugin.resource(self.resource).get(wanted)
        for part in self.field.split("."):
            record = record.get(part) if isinstance(record, dict) else None
        if record is None:
            raise InvalidArgumentError(f"record {wanted!r} has no {self.field!r} vector to search with")
        return wanted, np.asarray(record, dtype=np.float32)

    def render(self) -> str:
        if self.resource is None:
            return "<p><i>no resource has an embedding:N field yet</i></p>"
        plugin = self.plugin
        vf = plugin.field(self.resource, self.field)
        ids, matrix = plugin.vectors(self.resource, vf.path)
        indexed = any(i["resource"] == self.resource and i["field"] == vf.path for i in plugin.index_info())
        cards = stat_cards({
            "resource": self.resource, "field": vf.path, "dimensions": vf.dimensions, "vectors": len(ids),
            "metric": self.metric, "index": "in memory" if indexed else "none",
        })  # fmt: skip
        if not ids:
            return cards + "<p><i>no record has a vector yet</i></p>"
        label, query = self._query(ids, matrix)
        found = plugin.vector_search(self.resource, query, self.k, field=vf.path, metric=self.metric)
        shown = found[["id", *[c for c in found.columns if c not in ("id", DISTANCE_COLUMN)], DISTANCE_COLUMN]]
        table = html_table(
            [{c: _preview(v) for c, v in row.items()} for row in shown.to_dict(orient="records")], list(shown.columns), limit=self.k
        )
        body = cards + section(f"{len(found)} nearest to {label}", table)
        body += section("PCA projection", self._scatter(ids, matrix, query, found))
        problems = [r for r in plugin.storage_report() if r["resource"] == self.resource and not r["fits"]]
        if problems:
            body += section("Storage", html_table(problems, ["field", "dimensions", "estimated_bytes", "behavior", "advice"]))
        return body

    def _scatter(self, ids: list[str], matrix: np.ndarray, query: np.ndarray, found: Any) -> str:
        rows = np.arange(len(ids))
        if len(ids) > self.sample:  # a seeded sample keeps the picture the same run to run
            rows = np.sort(np.random.default_rng(0).choice(len(ids), self.sample, replace=False))
        points = matrix[rows]
        if points.shape[0] < 2:
            return "<p><i>need at least two vectors to draw a projection</i></p>"
        projection = pca_2d(points)
        groups = None
        if 2 <= self.clusters < points.shape[0]:
            groups = kmeans(points, self.clusters, seed=0).labels.tolist()
        near = np.empty((0, 2))
        if self.field in found.columns and len(found):  # nested fields: no circles
            near = projection.transform(np.array([np.asarray(v, dtype=np.float64) for v in found[self.field]]))
        spread = float(np.ptp(projection.points, axis=0).max()) or 1.0
        total = float(((points - points.mean(axis=0)) ** 2).sum())
        share = [float((projection.points[:, i] ** 2).sum()) / total if total else 0.0 for i in (0, 1)]
        legend = [(f"cluster {g + 1}", "dot", svg.color(g)) for g in sorted(set(groups))] if groups else [("vector", "dot", svg.color(0))]
        legend.append(("query", "star", svg.color(3)))
        if len(near):
            legend.append((f"{len(near)} nearest", "ring", svg.color(1)))
        return svg.scatter(
            [tuple(p) for p in projection.points],
            groups=groups,
            labels=[ids[i] for i in rows],
            highlight=[tuple(projection.transform(query)[0])],
            circles=[(x, y, spread * 0.02) for x, y in near],
            title=f"{len(rows)} of {len(ids)} vectors" + (f", {self.clusters} k-means clusters" if groups else ""),
            x_label=f"PC1 ({share[0]:.0%} of variance)",
            y_label=f"PC2 ({share[1]:.0%} of variance)",
            legend=legend,
            width=420,
            height=400,
        )

    # -- live controls ---------------------------------------------------------------------------

    def controls(self) -> list[Any]:
        import ipywidgets as w

        from s3db_nb.plugins.vector import METRICS

        names = sorted({f.resource for f in self.plugin.fields()})

        def fit(basis: str) -> dict[str, Any]:
            # no fixed widths: each control starts at ``basis`` and the toolbar wraps them
            return {"layout": w.Layout(flex=f"0 1 {basis}", width="auto", max_width="100%"), "style": {"description_width": "initial"}}

        self.resource_box = w.Dropdown(options=names, value=self.resource, description="resource", **fit("12em"))
        self.field_box = w.Dropdown(options=self._field_options(), value=self.field, description="field", **fit("12em"))
        self.k_box = w.BoundedIntText(value=self.k, min=1, max=100, description="k", **fit("6em"))
        self.metric_box = w.Dropdown(options=list(METRICS), value=self.metric, description="metric", **fit("11em"))
        self.clusters_box = w.BoundedIntText(value=self.clusters, min=0, max=20, description="clusters", **fit("8em"))
        self._query_box = w.Text(value=self.query_id or "", placeholder="record id (blank: first)", description="query", **fit("16em"))
        self.search_button = w.Button(description="Search", icon="search", layout=w.Layout(width="auto"))

        def on_resource(change: dict[str, Any]) -> None:
            self.resource = change["new"]
            self.field_box.options = self._field_options()
            self.field = self.field_box.options[0] if self.field_box.options else None
            self.query_id, self.query_vector = None, None
            self.refresh()

        def on_change(name: str) -> Any:
            def apply(change: dict[str, Any]) -> None:
                setattr(self, name, change["new"])
                self.refresh()

            return self.callback(apply)

        def on_search(_: Any) -> None:
            text = self._query_box.value.strip()
            if text:
                self.set_query(text)
            else:
                self._reset_query()

        self.resource_box.observe(self.callback(on_resource), names="value")
        self.field_box.observe(on_change("field"), names="value")
        self.k_box.observe(on_change("k"), names="value")
        self.metric_box.observe(on_change("metric"), names="value")
        self.clusters_box.observe(on_change("clusters"), names="value")
        self.search_button.on_click(self.callback(on_search))
        return [self.resource_box, self.field_box, self.k_box, self.metric_box, self.clusters_box, self._query_box, self.search_button]

    def _reset_query(self) -> None:
        self.query_id, self.query_vector = None, None
        self.refresh()

    def _field_options(self) -> list[str]:
        return [f.path for f in self.plugin.fields(self.resource)] if self.resource else []


__all__ = ["VectorDashboard"]
