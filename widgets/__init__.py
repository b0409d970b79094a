"""``s3db_nb.widgets``: notebook views of plugins (ipywidgets, with a static HTML face).

Each plugin's view lives in its own module (``costs.py``, ``metrics.py``, ...) and is found by
``plugin.dashboard()`` through the ``s3db_nb.dashboards`` entry points; ``svg.py`` draws the
charts and ``base.py`` holds the :class:`Dashboard` base class.
"""

from .base import Dashboard, Tabs, html_table, stat_cards

__all__ = ["Dashboard", "Tabs", "html_table", "stat_cards"]
