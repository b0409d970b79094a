"""The Tree plugin's view: one tree of a resource, collapsible, with its size, depth and health.

The static face nests ``<details>`` elements (they fold and unfold on GitHub, in exported HTML
and in nbval without any script); the live face is an ipywidgets tree (a ▸/▾ button per node
with children) with pickers for the resource and the tree, Expand/Collapse all, Verify, and a
click on a node to show its path from the root.

    >>> view = tree_plugin.dashboard()
    >>> view.select(node_id)      # what clicking a node does: its path, depth and subtree size
    >>> view.verify()             # what the Verify button does
"""

from __future__ import annotations

from typing import Any

from .base import Dashboard, esc, section, stat_cards

#: label fields tried in order when ``label_field`` is not given
LABEL_FIELDS = ("name", "title", "label")
_STYLE = (
    "<style>.s3db-tree details{margin-left:14px}.s3db-tree summary{cursor:pointer}"
    ".s3db-tree .leaf{margin-left:28px}.s3db-tree small{color:#888}</style>"
)


class TreeDashboard(Dashboard):
    """A tree of one configured resource (``resource``, and ``tree_id`` with several trees per
    resource). ``max_nodes`` bounds what is drawn (an "N of M" line says when some are left out);
    ``open_depth`` is how many levels start unfolded."""

    title = "Tree"

    def __init__(
        self,
        plugin: Any,
        *,
        resource: str | None = None,
        tree_id: str | None = None,
        max_nodes: int = 300,
        open_depth: int = 1,
        label_field: str | None = None,
    ) -> None:
        super().__init__(plugin)
        names = list(plugin.apis) or list(plugin.resources)
        self.resource_name: str | None = resource or (names[0] if names else None)
        self.tree_id = tree_id
        self.max_nodes = max_nodes
        self.open_depth = open_depth
        self.label_field = label_field
        self.selected: str | None = None
        self.verification: Any = None
        self.nodes: list[dict[str, Any]] = []  # the last read, nested
        self._live = False
        self._skip_read = False
        self._toggles: dict[str, Any] = {}
        self._boxes: dict[str, Any] = {}
        self.tree_box: Any = None

    # -- data --------------------------------------------------------------------------------------

    def _api(self) -> Any:
        return None if self.resource_name is None or self.resource_name not in self.plugin.apis else self.plugin.tree(self.resource_name)

    def _read(self) -> list[dict[str, Any]]:
        api = self._api()
        self.nodes = [] if api is None else api.to_nested_array(tree_id=self.tree_id)
        return self.nodes

    def label(self, node: dict[str, Any]) -> str:
        for name in (self.label_field,) if self.label_field else LABEL_FIELDS:
            if node.get(name) not in (None, ""):
                return str(node[name])
        return str(node["id"])

    def _walk(self) -> list[tuple[dict[str, Any], int]]:
        """``(node, level)`` in preorder over the last read."""
        out: list[tuple[dict[str, Any], int]] = []
        stack = [(node, 0) for node in reversed(self.nodes)]
        while stack:
            node, level = stack.pop()
            out.append((node, level))
            stack.extend((child, level + 1) for child in reversed(node["children"]))
        return out

    # -- actions -------------------------------------------------------------------------------------

    def select(self, node_id: str) -> dict[str, Any] | None:
        """Show ``node_id``'s path from the root (what clicking a node does); returns the node."""
        self.selected = node_id
        self._redraw(read=False)
        return self._find(node_id)

    def verify(self) -> Any:
        """Run ``verify_tree`` on the tree shown and show the result (the Verify button)."""
        api = self._api()
        self.verification = None if api is None else api.verify_tree(self.tree_id)
        self._redraw(read=True)
        return self.verification

    def refresh(self, *_: Any) -> None:
        """Re-read the tree and redraw both faces."""
        super().refresh()
        if self.tree_box is not None:
            self._draw_tree()

    def _redraw(self, *, read: bool) -> None:
        self._skip_read = not read
        try:
            super().refresh()
        finally:
            self._skip_read = False

    def _find(self, node_id: str) -> dict[str, Any] | None:
        return next((node for node, _ in self._walk() if node["id"] == node_id), None)

    # -- static face ----------------------------------------------------------------------------------

    def render(self) -> str:
        api = self._api()
        if api is None:
            return "<p><i>TreePlugin has no resource set up yet: TreePlugin(resources=['categories']) and create the resource</i></p>"
        if not self._skip_read:
            self._read()
        walk = self._walk()
        cfg = api.config
        cards: dict[str, Any] = {"resource": self.resource_name, "driver": cfg.driver}
        if cfg.tree_field is not None:
            cards["tree"] = self.tree_id or "all trees"
        cards.update({"nodes": len(walk), "roots": len(self.nodes), "depth": max((level for _, level in walk), default=0)})
        if self.verification is not None:
            cards["verify"] = "valid" if self.verification.valid else f"{len(self.verification.errors)} error(s)"
        parts = [stat_cards(cards), self._selection(walk), self._problems()]
        if not self._live:
            parts.append(section("Tree", self._details(walk)))
        return "".join(parts)

    def _selection(self, walk: list[tuple[dict[str, Any], int]]) -> str:
        if self.selected is None:
            return ""
        parents = {node["id"]: None for node in self.nodes}
        by_id = {}
        for node, _ in walk:
            by_id[node["id"]] = node
            for child in node["children"]:
                parents[child["id"]] = node["id"]
        if self.selected not in by_id:
            return f"<p><i>node {esc(self.selected)} is not in this tree</i></p>"
        path, at = [], self.selected
        while at is not None:
            path.append(by_id[at])
            at = parents[at]
        node = by_id[self.selected]
        size = sum(1 for _ in self._subtree(node)) - 1
        crumbs = " › ".join(esc(self.label(n)) for n in reversed(path))
        return section(
            "Selected", f"<p>{crumbs} <small>depth {len(path) - 1}, {len(node['children'])} children, {size} descendants</small></p>"
        )

    @staticmethod
    def _subtree(node: dict[str, Any]) -> Any:
        stack = [node]
        while stack:
            item = stack.pop()
            yield item
            stack.extend(item["children"])

    def _problems(self) -> str:
        found = self.verification
        if found is None or found.valid:
            return ""
        rows = "".join(f"<li>{esc(e.get('type'))}: {esc(e.get('message'))}</li>" for e in found.errors[:20])
        more = f"<li>… {len(found.errors) - 20} more</li>" if len(found.errors) > 20 else ""
        return section("Problems", f"<ul>{rows}{more}</ul><p>Repair with <code>resource.tree.rebuild_tree()</code>.</p>")

    def _details(self, walk: list[tuple[dict[str, Any], int]]) -> str:
        """Nested ``<details>`` for the first ``max_nodes`` nodes in preorder."""
        if not walk:
            return "<p><i>the tree is empty: resource.tree.create_root({...})</i></p>"
        shown = walk[: self.max_nodes]
        out, open_levels = [], 0
        for index, (node, level) in enumerate(shown):
            while open_levels > level:
                out.append("</details>")
                open_levels -= 1
            text = f"<b>{esc(self.label(node))}</b> <small>{esc(node['id'])}</small>"
            has_shown_child = index + 1 < len(shown) and shown[index + 1][1] > level
            if node["children"] and has_shown_child:
                opened = " open" if level < self.open_depth else ""
                out.append(f"<details{opened}><summary>{text} <small>({len(node['children'])})</small></summary>")
                open_levels += 1
            else:
                more = f" <small>({len(node['children'])} not shown)</small>" if node["children"] else ""
                out.append(f"<div class='leaf'>{text}{more}</div>")
        out.append("</details>" * open_levels)
        footer = f"<p><small>{len(shown)} of {len(walk)} nodes shown</small></p>" if len(shown) < len(walk) else ""
        return f"{_STYLE}<div class='s3db-tree'>{''.join(out)}</div>{footer}"

    def static_html(self) -> str:
        """The static face (with the ``<details>`` tree), also when the live view is built."""
        live, self._live = self._live, False
        try:
            return self.to_html()
        finally:
            self._live = live

    # -- live face --------------------------------------------------------------------------------------

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.resource_picker = w.Dropdown(options=list(self.plugin.apis), value=self.resource_name, description="resource")
        self.resource_picker.observe(self.callback(self._on_resource), names="value")
        self.tree_picker = w.Dropdown(options=self._tree_options(), value=self.tree_id, description="tree")
        self.tree_picker.layout.display = "" if self.plugin.tree_config.tree_field else "none"
        self.tree_picker.observe(self.callback(self._on_tree), names="value")
        self.expand_button = w.Button(description="Expand all", icon="plus-square")
        self.expand_button.on_click(self.callback(lambda *_: self.expand(True)))
        self.collapse_button = w.Button(description="Collapse all", icon="minus-square")
        self.collapse_button.on_click(self.callback(lambda *_: self.expand(False)))
        self.verify_button = w.Button(description="Verify", icon="check", tooltip="verify_tree(): nesting, parents, depths, cycles")
        self.verify_button.on_click(self.callback(lambda *_: self.verify()))
        return [self.resource_picker, self.tree_picker, self.expand_button, self.collapse_button, self.verify_button]

    def _tree_options(self) -> list[tuple[str, str | None]]:
        api = self._api()
        if api is None or api.config.tree_field is None:
            return [("(one tree)", None)]
        return [("all trees", None)] + [(name, name) for name in api.tree_ids()]

    def _on_resource(self, change: dict[str, Any]) -> None:
        self.resource_name, self.tree_id, self.selected = change["new"], None, None
        self.tree_picker.options = self._tree_options()
        self.refresh()

    def _on_tree(self, change: dict[str, Any]) -> None:
        self.tree_id, self.selected = change["new"], None
        self.refresh()

    @property
    def widget(self) -> Any:
        """The ipywidgets layout: toolbar, summary, and the collapsible node tree below."""
        if self._widget is None:
            import ipywidgets as w

            self._live = True
            layout = Dashboard.widget.fget(self)
            self.tree_box = w.VBox()
            self._draw_tree()
            layout.children = (*layout.children, self.tree_box)
        return self._widget

    def _draw_tree(self) -> None:
        import ipywidgets as w

        self._toggles, self._boxes = {}, {}

        def row(node: dict[str, Any], level: int) -> Any:
            label = w.Button(description=self.label(node), tooltip=node["id"], layout=w.Layout(width="auto"))
            label.style.button_color = "transparent"
            label.on_click(self.callback(lambda *_, node_id=node["id"]: self.select(node_id)))
            if not node["children"]:
                return w.HBox([w.HTML(value="<span style='display:inline-block;width:28px'></span>"), label])
            opened = level < self.open_depth
            toggle = w.Button(description="▾" if opened else "▸", layout=w.Layout(width="28px"))
            kids = w.VBox(layout=w.Layout(margin="0 0 0 18px", display="" if opened else "none"))
            toggle.on_click(self.callback(lambda *_, node_id=node["id"]: self.toggle(node_id)))
            self._toggles[node["id"]], self._boxes[node["id"]] = toggle, kids
            return w.VBox([w.HBox([toggle, label]), kids])

        top: list[Any] = []
        placed: dict[int, list[Any]] = {}  # id(children box) → its rows, assigned once at the end
        boxes: dict[int, Any] = {}
        stack: list[tuple[dict[str, Any], int, Any]] = [(node, 0, None) for node in reversed(self.nodes)]
        drawn = 0
        while stack and drawn < self.max_nodes:
            node, level, box = stack.pop()
            drawn += 1
            made = row(node, level)
            if box is None:
                top.append(made)
            else:
                placed.setdefault(id(box), []).append(made)
                boxes[id(box)] = box
            if node["children"]:
                kids = self._boxes[node["id"]]
                stack.extend((child, level + 1, kids) for child in reversed(node["children"]))
        for key, rows in placed.items():
            boxes[key].children = tuple(rows)
        self.tree_box.children = tuple(top)

    def toggle(self, node_id: str, opened: bool | None = None) -> None:
        """Fold or unfold a node of the live tree (its ▸/▾ button)."""
        box, button = self._boxes.get(node_id), self._toggles.get(node_id)
        if box is None:
            return
        show = box.layout.display == "none" if opened is None else opened
        box.layout.display = "" if show else "none"
        button.description = "▾" if show else "▸"

    def expand(self, opened: bool = True) -> None:
        """Unfold (or fold) every node of the live tree."""
        for node_id in self._boxes:
            self.toggle(node_id, opened)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(include, exclude)
        bundle["text/html"] = self.static_html()  # readers without widgets get the folded <details> tree
        return bundle


__all__ = ["TreeDashboard", "LABEL_FIELDS"]
