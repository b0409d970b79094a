"""Charts as inline SVG strings, built in Python so they render offline, on GitHub and in nbval.

Every function returns a complete ``<svg>`` element. Labels pass through ``html.escape``; no
random ids are generated, so the same data always gives the same bytes (nbval compares them).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence

from s3db_nb.plugin_api import InvalidArgumentError

#: a colour-blind-safe palette (Okabe–Ito), used in order for series and clusters
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_FONT = "font-family='sans-serif' font-size='11'"


def color(i: int) -> str:
    """The ``i``-th palette colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def _fmt(value: float) -> str:
    """Compact number for axis labels: 1234 → 1.23k, 0.000123 → 0.000123."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _n(value: float) -> str:
    """Coordinates with two decimals (stable text, small files)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, body: str, title: str | None) -> str:
    head = f"<title>{html.escape(title)}</title>" if title else ""
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' class='s3db-chart'>{head}{body}</svg>"
    )


def _empty(width: int, height: int, title: str | None, message: str) -> str:
    text = f"<text x='{width // 2}' y='{height // 2}' text-anchor='middle' fill='#777' {_FONT}>{html.escape(message)}</text>"
    return _svg(width, height, text, title)


def bar_chart(
    values: Mapping[str, float] | Sequence[tuple[str, float]],
    *,
    title: str | None = None,
    width: int = 420,
    bar_height: int = 18,
    value_format: str = "{:,.6g}",
    empty: str = "no data",
) -> str:
    """Horizontal bars, one per label, longest first as given (sort before calling)."""
    items = list(values.items()) if isinstance(values, Mapping) else list(values)
    if not items:
        return _empty(width, 60, title, empty)
    label_w = min(180, 8 + 7 * max(len(str(k)) for k, _ in items))
    value_w = 90
    plot_w = max(40, width - label_w - value_w)
    top = 6
    height = top + len(items) * (bar_height + 4) + 4
    peak = max((abs(float(v)) for _, v in items), default=0) or 1.0
    parts = []
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_height + 4)
        w = plot_w * abs(float(value)) / peak
        parts.append(
            f"<text x='{label_w - 6}' y='{_n(y + bar_height * 0.72)}' text-anchor='end' {_FONT}>{html.escape(str(label))}</text>"
            f"<rect x='{label_w}' y='{y}' width='{_n(max(w, 0.5))}' height='{bar_height}' fill='{color(0)}'>"
            f"<title>{html.escape(str(label))}: {html.escape(value_format.format(value))}</title></rect>"
            f"<text x='{_n(label_w + w + 4)}' y='{_n(y + bar_height * 0.72)}' {_FONT}>{html.escape(value_format.format(value))}</text>"
        )
    return _svg(width, height, "".join(parts), title)


def stacked_bar_chart(
    rows: Mapping[str, Mapping[str, float]],
    *,
    title: str | None = None,
    width: int = 480,
    bar_height: int = 18,
    value_format: str = "{:,.6g}",
    empty: str = "no data",
) -> str:
    """Horizontal stacked bars: ``{row label: {segment: value}}`` with a legend of segments."""
    if not rows:
        return _empty(width, 60, title, empty)
    segments: list[str] = []
    for parts in rows.values():
        for seg in parts:
            if seg not in segments:
                segments.append(seg)
    label_w = min(180, 8 + 7 * max(len(str(k)) for k in rows))
    value_w = 90
    plot_w = max(40, width - label_w - value_w)
    legend_h = 18 * math.ceil(len(segments) / 4)
    top = legend_h + 6
    height = top + len(rows) * (bar_height + 4) + 4
    totals = {k: sum(float(v) for v in parts.values()) for k, parts in rows.items()}
    peak = max(totals.values(), default=0) or 1.0
    out = []
    for i, seg in enumerate(segments):
        x = 4 + (i % 4) * (width // 4)
        y = 4 + 18 * (i // 4)
        out.append(
            f"<rect x='{x}' y='{y}' width='10' height='10' fill='{color(i)}'/>"
            f"<text x='{x + 14}' y='{y + 9}' {_FONT}>{html.escape(str(seg))}</text>"
        )
    for r, (label, parts) in enumerate(rows.items()):
        y = top + r * (bar_height + 4)
        x = float(label_w)
        out.append(f"<text x='{label_w - 6}' y='{_n(y + bar_height * 0.72)}' text-anchor='end' {_FONT}>{html.escape(str(label))}</text>")
        for s, seg in enumerate(segments):
            value = float(parts.get(seg, 0) or 0)
            if value <= 0:
                continue
            w = plot_w * value / peak
            out.append(
                f"<rect x='{_n(x)}' y='{y}' width='{_n(max(w, 0.5))}' height='{bar_height}' fill='{color(s)}'>"
                f"<title>{html.escape(str(label))} · {html.escape(str(seg))}: {html.escape(value_format.format(value))}</title></rect>"
            )
            x += w
        out.append(
            f"<text x='{_n(x + 4)}' y='{_n(y + bar_height * 0.72)}' {_FONT}>{html.escape(value_format.format(totals[label]))}</text>"
        )
    return _svg(width, height, "".join(out), title)


def _axes(
    width: int,
    height: int,
    left: int,
    bottom: int,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    x_labels: bool = True,
    top: int = 4,
) -> str:
    x0, x1 = x_range
    y0, y1 = y_range
    base = height - bottom
    out = [
        f"<line x1='{left}' y1='{base}' x2='{width - 4}' y2='{base}' stroke='#999'/>",
        f"<line x1='{left}' y1='{top}' x2='{left}' y2='{base}' stroke='#999'/>",
        f"<text x='{left - 4}' y='{top + 8}' text-anchor='end' {_FONT}>{html.escape(_fmt(y1))}</text>",
        f"<text x='{left - 4}' y='{base}' text-anchor='end' {_FONT}>{html.escape(_fmt(y0))}</text>",
    ]
    if x_labels:
        out.append(f"<text x='{left}' y='{base + 14}' {_FONT}>{html.escape(_fmt(x0))}</text>")
        out.append(f"<text x='{width - 4}' y='{base + 14}' text-anchor='end' {_FONT}>{html.escape(_fmt(x1))}</text>")
    return "".join(out)


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str | None = None,
    width: int = 480,
    height: int = 180,
    x_labels: Sequence[str] | None = None,
    empty: str = "no data",
) -> str:
    """Lines of ``(x, y)`` points, one per series, with a legend. ``x_labels`` (first, last)
    replace the numeric x-axis ends (e.g. times). When every point has the same x (one time
    bucket), the series are drawn as bars, labelled with the last of ``x_labels``."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return _empty(width, height, title, empty)
    if len({float(x) for x, _ in points}) == 1:  # one bucket: a line of one point is invisible
        label = str(x_labels[-1]) if x_labels else _fmt(float(points[0][0]))
        return _bucket_bars({name: sum(float(y) for _, y in pts) for name, pts in series.items()}, label, title, width, height)
    left, bottom = 48, 20
    legend_h = 16 * math.ceil(len(series) / 4)
    top = 4 + legend_h
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    plot_w, plot_h = width - left - 8, height - bottom - top

    def px(x: float) -> float:
        return left + plot_w * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return top + plot_h * (1 - (y - y0) / (y1 - y0))

    out = [_axes(width, height, left, bottom, (x0, x1), (y0, y1), x_labels=x_labels is None, top=top)]
    if x_labels:
        out.append(f"<text x='{left}' y='{height - 6}' {_FONT}>{html.escape(str(x_labels[0]))}</text>")
        out.append(f"<text x='{width - 4}' y='{height - 6}' text-anchor='end' {_FONT}>{html.escape(str(x_labels[-1]))}</text>")
    for i, (name, pts) in enumerate(series.items()):
        lx = 4 + (i % 4) * (width // 4)
        ly = 4 + 16 * (i // 4)
        out.append(
            f"<rect x='{lx}' y='{ly}' width='10' height='10' fill='{color(i)}'/><text x='{lx + 14}' y='{ly + 9}' {_FONT}>{html.escape(str(name))}</text>"
        )
        if not pts:
            continue
        path = " ".join(f"{_n(px(float(x)))},{_n(py(float(y)))}" for x, y in pts)
        out.append(f"<polyline fill='none' stroke='{color(i)}' stroke-width='1.5' points='{path}'/>")
        if len(pts) == 1:
            ((x, y),) = pts
            out.append(f"<circle cx='{_n(px(float(x)))}' cy='{_n(py(float(y)))}' r='3' fill='{color(i)}'/>")
    return _svg(width, height, "".join(out), title)


def _legend_row(names: Sequence[str], width: int) -> str:
    out = []
    for i, name in enumerate(names):
        lx = 4 + (i % 4) * (width // 4)
        ly = 4 + 16 * (i // 4)
        out.append(
            f"<rect x='{lx}' y='{ly}' width='10' height='10' fill='{color(i)}'/><text x='{lx + 14}' y='{ly + 9}' {_FONT}>{html.escape(str(name))}</text>"
        )
    return "".join(out)


def _bucket_bars(values: Mapping[str, float], x_label: str, title: str | None, width: int, height: int) -> str:
    """One time bucket of a line chart: a vertical bar per series (with its value), side by side
    above the bucket's label, with the legend and colours the lines would have had."""
    left, bottom = 48, 20
    top = 4 + 16 * math.ceil(len(values) / 4)
    plot_w, plot_h = width - left - 8, height - bottom - top
    lo, hi = min([0.0, *values.values()]), max([0.0, *values.values()])
    if hi == lo:
        hi = lo + 1

    def py(y: float) -> float:
        return top + plot_h * (1 - (y - lo) / (hi - lo))

    out = [_axes(width, height, left, bottom, (0.0, 1.0), (lo, hi), x_labels=False, top=top), _legend_row(list(values), width)]
    bar_w = min(48.0, plot_w / (len(values) + 1))
    x = left + (plot_w - bar_w * len(values)) / 2
    for i, (name, value) in enumerate(values.items()):
        y0, y1 = py(max(value, 0.0)), py(min(value, 0.0))
        text = html.escape(_fmt(value))
        out.append(
            f"<rect class='s3db-bucket' x='{_n(x)}' y='{_n(y0)}' width='{_n(bar_w - 2)}' height='{_n(max(y1 - y0, 0.5))}' fill='{color(i)}'>"
            f"<title>{html.escape(str(name))}: {text}</title></rect>"
            f"<text x='{_n(x + bar_w / 2 - 1)}' y='{_n(max(y0 - 3, top + 9))}' text-anchor='middle' {_FONT}>{text}</text>"
        )
        x += bar_w
    out.append(f"<text x='{_n(left + plot_w / 2)}' y='{height - 6}' text-anchor='middle' {_FONT}>{html.escape(x_label)}</text>")
    return _svg(width, height, "".join(out), title)


def histogram(
    edges: Sequence[float],
    counts: Sequence[float],
    *,
    title: str | None = None,
    width: int = 420,
    height: int = 160,
    markers: Mapping[str, float] | None = None,
    empty: str = "no data",
) -> str:
    """Vertical bars for ``counts`` between consecutive ``edges`` (len(edges) == len(counts) + 1);
    ``markers`` draws labelled vertical lines (p50, p95, ...)."""
    if not counts or not any(counts):
        return _empty(width, height, title, empty)
    if len(edges) != len(counts) + 1:
        raise InvalidArgumentError(f"histogram needs len(edges) == len(counts) + 1, got {len(edges)} and {len(counts)}")
    left, bottom, top = 40, 20, 6
    plot_w, plot_h = width - left - 8, height - bottom - top
    lo, hi = float(edges[0]), float(edges[-1])
    span = (hi - lo) or 1.0
    peak = max(counts) or 1
    out = [_axes(width, height, left, bottom, (lo, hi), (0, float(peak)), top=top)]
    for i, count in enumerate(counts):
        x = left + plot_w * (float(edges[i]) - lo) / span
        w = plot_w * (float(edges[i + 1]) - float(edges[i])) / span
        h = plot_h * float(count) / peak
        out.append(
            f"<rect x='{_n(x)}' y='{_n(top + plot_h - h)}' width='{_n(max(w - 1, 0.5))}' height='{_n(h)}' fill='{color(0)}'>"
            f"<title>{html.escape(_fmt(float(edges[i])))}–{html.escape(_fmt(float(edges[i + 1])))}: {html.escape(_fmt(float(count)))}</title></rect>"
        )
    for j, (name, value) in enumerate((markers or {}).items()):
        x = left + plot_w * (min(max(float(value), lo), hi) - lo) / span
        out.append(
            f"<line x1='{_n(x)}' y1='{top}' x2='{_n(x)}' y2='{top + plot_h}' stroke='{color(j + 3)}' stroke-dasharray='3,2'/>"
            f"<text x='{_n(x + 2)}' y='{top + 10 + 11 * j}' fill='{color(j + 3)}' {_FONT}>{html.escape(str(name))}</text>"
        )
    return _svg(width, height, "".join(out), title)


def scatter(
    points: Iterable[tuple[float, float]],
    *,
    groups: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    highlight: Iterable[tuple[float, float]] = (),
    circles: Iterable[tuple[float, float, float]] = (),
    rects: Iterable[tuple[float, float, float, float]] = (),
    title: str | None = None,
    width: int = 360,
    height: int = 360,
    bounds: tuple[float, float, float, float] | None = None,
    equal_aspect: bool = True,
    x_label: str | None = None,
    y_label: str | None = None,
    legend: Sequence[tuple[str, str, str]] = (),
    empty: str = "no points",
) -> str:
    """Points in data coordinates (x right, y up). ``groups`` colours points by index,
    ``labels`` become hover titles, ``highlight`` points are drawn as large stars (a query),
    ``circles`` are ``(x, y, radius)`` outlines and ``rects`` ``(x0, y0, x1, y1)`` outlines
    (geohash cells, search bounds), all in data units. ``bounds`` = ``(x0, y0, x1, y1)``.
    ``x_label`` / ``y_label`` name the axes; ``legend`` is ``(label, shape, colour)`` items
    drawn above the plot, shape one of ``dot``, ``star``, ``ring``, ``box``."""
    pts = [(float(x), float(y)) for x, y in points]
    marks = [(float(x), float(y)) for x, y in highlight]
    circ = [(float(x), float(y), float(r)) for x, y, r in circles]
    boxes = [tuple(float(v) for v in r) for r in rects]
    if not pts and not marks:
        return _empty(width, height, title, empty)
    if bounds is None:
        xs = (
            [p[0] for p in pts + marks]
            + [c[0] - c[2] for c in circ]
            + [c[0] + c[2] for c in circ]
            + [b[0] for b in boxes]
            + [b[2] for b in boxes]
        )
        ys = (
            [p[1] for p in pts + marks]
            + [c[1] - c[2] for c in circ]
            + [c[1] + c[2] for c in circ]
            + [b[1] for b in boxes]
            + [b[3] for b in boxes]
        )
        bounds = (min(xs), min(ys), max(xs), max(ys))
    x0, y0, x1, y1 = bounds
    pad = 10
    key, legend_h = _legend_items(legend, width)
    left = pad + (14 if y_label else 0)
    top = pad + legend_h
    bottom = pad + (14 if x_label else 0)
    sx = (x1 - x0) or 1.0
    sy = (y1 - y0) or 1.0
    kx, ky = (width - left - pad) / sx, (height - top - bottom) / sy
    if equal_aspect:
        kx = ky = min(kx, ky)

    def px(x: float) -> float:
        return left + (x - x0) * kx

    def py(y: float) -> float:
        return height - bottom - (y - y0) * ky

    out = [f"<rect x='0' y='0' width='{width}' height='{height}' fill='#fafafa' stroke='#ddd'/>", key]
    if x_label:
        out.append(
            f"<text x='{_n(left + (width - left - pad) / 2)}' y='{height - 5}' text-anchor='middle' {_FONT}>{html.escape(x_label)}</text>"
        )
    if y_label:
        middle = _n(top + (height - top - bottom) / 2)
        out.append(
            f"<text x='13' y='{middle}' transform='rotate(-90 13 {middle})' text-anchor='middle' {_FONT}>{html.escape(y_label)}</text>"
        )
    for bx0, by0, bx1, by1 in boxes:
        out.append(
            f"<rect x='{_n(px(min(bx0, bx1)))}' y='{_n(py(max(by0, by1)))}' width='{_n(abs(bx1 - bx0) * kx)}' "
            f"height='{_n(abs(by1 - by0) * ky)}' fill='none' stroke='#bbb' stroke-dasharray='2,2'/>"
        )
    for cx, cy, r in circ:
        out.append(
            f"<ellipse cx='{_n(px(cx))}' cy='{_n(py(cy))}' rx='{_n(r * kx)}' ry='{_n(r * ky)}' "
            f"fill='{color(1)}' fill-opacity='0.08' stroke='{color(1)}'/>"
        )
    for i, (x, y) in enumerate(pts):
        fill = color(groups[i]) if groups is not None else color(0)
        tip = f"<title>{html.escape(str(labels[i]))}</title>" if labels is not None else ""
        out.append(f"<circle cx='{_n(px(x))}' cy='{_n(py(y))}' r='3' fill='{fill}' fill-opacity='0.8'>{tip}</circle>")
    for x, y in marks:
        out.append(f"<text x='{_n(px(x))}' y='{_n(py(y) + 5)}' text-anchor='middle' font-size='16' fill='{color(3)}'>★</text>")
    return _svg(width, height, "".join(out), title)


def _legend_items(items: Sequence[tuple[str, str, str]], width: int) -> tuple[str, int]:
    """Legend entries ``(label, shape, colour)`` laid out left to right, wrapping at ``width``;
    returns the SVG and the height it takes (0 without entries)."""
    if not items:
        return "", 0
    out, x, y = [], 6.0, 6.0
    for label, shape, fill in items:
        size = 14 + 6.5 * len(label) + 12
        if x + size > width and x > 6:
            x, y = 6.0, y + 16
        cx, cy = x + 5, y + 5
        if shape == "star":
            mark = f"<text x='{_n(cx)}' y='{_n(cy + 5)}' text-anchor='middle' font-size='13' fill='{fill}'>★</text>"
        elif shape == "ring":
            mark = f"<circle cx='{_n(cx)}' cy='{_n(cy)}' r='4.5' fill='none' stroke='{fill}'/>"
        elif shape == "box":
            mark = f"<rect x='{_n(x)}' y='{_n(y)}' width='10' height='10' fill='none' stroke='{fill}' stroke-dasharray='2,2'/>"
        else:
            mark = f"<circle cx='{_n(cx)}' cy='{_n(cy)}' r='3.5' fill='{fill}'/>"
        out.append(f"{mark}<text x='{_n(x + 14)}' y='{_n(y + 9)}' {_FONT}>{html.escape(label)}</text>")
        x += size
    return "".join(out), int(y + 16)


__all__ = ["PALETTE", "color", "bar_chart", "stacked_bar_chart", "line_chart", "histogram", "scatter"]
