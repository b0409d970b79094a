"""``MLDashboard``: one model's versions, its predictions against the truth and what drives them.

For the chosen model: cards (type, target, active version, samples), a table of every version
with its metrics, the main metric across versions (line), the active version's held-out
predictions against the actual values (scatter for numbers, a confusion table for labels) and
its permutation feature importances (bars)::

    view = db.plugins.ml.dashboard()
    view.set_model("price")
"""

from __future__ import annotations

from typing import Any

from s3db_nb.plugin_api import InvalidArgumentError

from . import svg
from .base import Dashboard, html_table, section, stat_cards

#: the metric each kind of model is judged by first
MAIN_METRIC = {"regression": "r2", "classification": "accuracy"}


class MLDashboard(Dashboard):
    """Versions, predicted vs actual and feature importances of an ``MLPlugin`` model."""

    title = "ML models"

    def __init__(self, plugin: Any, *, model: str | None = None) -> None:
        super().__init__(plugin)
        self.model = model

    def set_model(self, name: str) -> None:
        """Show model ``name``, then redraw."""
        if name not in self.plugin.list_models():
            raise InvalidArgumentError(f"no model named {name!r}; models: {', '.join(self.plugin.list_models()) or '(none)'}")
        self.model = name
        if self._model_box is not None:
            self._model_box.value = name
        self.refresh()

    _model_box: Any = None

    def controls(self) -> list[Any]:
        import ipywidgets as w

        names = self.plugin.list_models()
        self._model_box = w.Dropdown(
            options=names, value=self.model if self.model in names else (names[0] if names else None), description="model"
        )

        def changed(change: dict[str, Any]) -> None:
            if change.get("new"):
                self.model = change["new"]
                self.refresh()

        self._model_box.observe(self.callback(changed), names="value")
        return [self._model_box]

    def render(self) -> str:
        names = self.plugin.list_models()
        if not names:
            return "<p><i>no model defined yet: MLPlugin(models={...}) or resource.ml.learn(target)</i></p>"
        name = self.model if self.model in names else names[0]
        stats = self.plugin.get_model_stats(name)
        versions = self.plugin.list_model_versions(name)
        cards = stat_cards({
            "model": name, "type": stats["type"], "resource": stats["resource"], "target": stats["target"],
            "versions": stats["versions"], "active": stats["active_version"] if stats["active_version"] is not None else "—",
            "samples": stats["samples"],
        })  # fmt: skip
        if not versions:
            return cards + f"<p><i>not trained yet: train({name!r})</i></p>"
        entry = self.plugin.get_version(name)
        kind = entry.get("kind", "regression")
        body = cards + section("Versions", self._versions_table(versions))
        main = MAIN_METRIC.get(kind, "r2")
        if len(versions) > 1:
            line = [(v["version"], v["metrics"][main]) for v in versions if isinstance(v["metrics"].get(main), (int, float))]
            body += section(f"{main} by version", svg.line_chart({main: line}, width=420, height=150))
        evaluation = entry.get("evaluation") or {}
        where = entry.get("evaluated_on", "held-out rows")
        if kind == "classification":
            body += section(f"Predicted vs actual (v{entry['version']}, {where})", _confusion(evaluation))
        else:
            body += section(f"Predicted vs actual (v{entry['version']}, {where})", _scatter(evaluation))
        importances = sorted((entry.get("importances") or {}).items(), key=lambda kv: -abs(kv[1]))[:15]
        body += section(
            "Feature importances (permutation, held-out rows)", svg.bar_chart(importances, value_format="{:.3g}", empty="no importances")
        )
        return body

    @staticmethod
    def _versions_table(versions: list[dict[str, Any]]) -> str:
        metric_names: list[str] = []
        for v in versions:
            metric_names += [m for m in v["metrics"] if m not in metric_names]
        rows = [
            {
                "version": f"v{v['version']}" + (" ✓" if v["active"] else ""),
                "trained_at": v["trained_at"],
                "estimator": v["estimator"],
                "samples": v["samples"],
                **{m: v["metrics"].get(m) for m in metric_names},
            }
            for v in reversed(versions)
        ]
        return html_table(rows, ["version", "trained_at", "estimator", "samples", *metric_names], limit=10, number_format="{:,.4g}")


def _scatter(evaluation: dict[str, Any]) -> str:
    pairs = [(a, p) for a, p in zip(evaluation.get("actual") or [], evaluation.get("predicted") or []) if a is not None and p is not None]
    if not pairs:
        return "<p><i>no evaluation points</i></p>"
    low = min(min(a, p) for a, p in pairs)
    high = max(max(a, p) for a, p in pairs)
    step = (high - low) / 40 or 1.0
    diagonal = [(low + i * step, low + i * step) for i in range(41)]  # y = x, drawn as faint dots
    points = [(float(a), float(p)) for a, p in pairs]
    svg_text = svg.scatter(
        points + diagonal,
        groups=[0] * len(points) + [7] * len(diagonal),
        labels=[f"actual {a:.4g}, predicted {p:.4g}" for a, p in points] + ["y = x"] * len(diagonal),
        bounds=(low, low, high, high),
        width=300,
        height=300,
    )
    return svg_text + "<p style='color:#777'>x: actual, y: predicted; the faint line is a perfect prediction</p>"


def _confusion(evaluation: dict[str, Any]) -> str:
    actual = [str(a) for a in evaluation.get("actual") or []]
    predicted = [str(p) for p in evaluation.get("predicted") or []]
    if not actual:
        return "<p><i>no evaluation points</i></p>"
    labels = sorted(set(actual) | set(predicted))[:12]
    rows = []
    for truth in labels:
        row: dict[str, Any] = {"actual \\ predicted": truth}
        for guess in labels:
            row[guess] = sum(1 for a, p in zip(actual, predicted) if a == truth and p == guess)
        rows.append(row)
    return html_table(rows, ["actual \\ predicted", *labels], limit=12)
