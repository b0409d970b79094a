"""The seeds' JavaScript examples that concern a plugin not built yet, listed so that each later
plugin issue turns its own on (replace the entry's skip by a port in ``test_seed_<plugin>.py`` and
drop it from ``PENDING`` once every plugin it names is built).

The list lives here, so CI on a clean clone (where ``../shared/seeds`` may be absent) still runs
the checks that need no seed text; ``test_the_pending_list_matches_the_seeds`` re-reads the seed
markdown when it is there (``S3DB_SEEDS`` points elsewhere) and fails when an example naming an
unbuilt plugin is missing from the list, or an entry no longer matches an example.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import s3db_nb.plugins

SEEDS = Path(os.environ.get("S3DB_SEEDS", Path(__file__).resolve().parents[3] / "shared" / "seeds"))

#: the seed table's plugins that were not built when this list was made → the issue that builds them
#: (None: no issue filed yet); the ones built since are in ``s3db_nb.plugins.CLASS_NAMES``
PLANNED: dict[str, int | None] = {
    "SchedulerPlugin": 20, "TTLPlugin": 20, "S3QueuePlugin": 20,
    "EventualConsistencyPlugin": 21, "StateMachinePlugin": 21,
    "RelationPlugin": 22, "GraphPlugin": 22, "TreePlugin": 22,
    "BackupPlugin": 23, "ReplicatorPlugin": 23, "QueueConsumerPlugin": 23,
    "MLPlugin": 24, "TfstatePlugin": 24, "TournamentPlugin": 24,
    "ApiPlugin": None, "IdentityPlugin": None, "CloudInventoryPlugin": None, "KubernetesInventoryPlugin": None,
    "ReconPlugin": None, "SpiderSuitePlugin": None, "CookieFarmSuitePlugin": None, "PuppeteerPlugin": None, "SMTPPlugin": None,
}  # fmt: skip

_GUIDE_21 = "000_36f5ab1563fd6182.txt"  # the older plugin guide
_GUIDE = "001_e7a9f11c49042cc7.txt"  # the plugin guide with namespaces, plugin attributes and PluginStorage

#: (seed file, heading above the example, n-th ```javascript block under that heading, the unbuilt plugins it names)
PENDING: list[tuple[str, str, int, tuple[str, ...]]] = [
    (_GUIDE, "Automatic Namespace Detection", 1, ("ReconPlugin",)),
    (_GUIDE, "Common Use Cases", 3, ("ReconPlugin",)),
    (_GUIDE, "`warnNamespaceUsage(pluginName, currentNamespace, existingNamespaces)`", 1, ("ReconPlugin",)),
    (_GUIDE, "`detectAndWarnNamespaces(storage, pluginName, pluginPrefix, currentNamespace)`", 1, ("ReconPlugin",)),
]  # fmt: skip


def unbuilt(plugins: tuple[str, ...] | list[str]) -> list[str]:
    """The plugins of ``plugins`` that s3db_nb does not ship yet."""
    return [name for name in plugins if name not in s3db_nb.plugins.CLASS_NAMES]


def _reason(plugins: tuple[str, ...]) -> str:
    return "pending: " + "; ".join(
        f"{name} not built (issue #{PLANNED[name]})" if PLANNED[name] else f"{name} not built (no issue filed yet)"
        for name in unbuilt(plugins)
    )


def javascript_blocks(text: str):
    """``(heading, n, code)`` for every ```javascript block, ``n`` counting blocks under one heading.

    One seed has a stray closing fence (001, before "Cleanup Best Practices"), so a fence with a
    language always opens a block, and a ``## heading`` inside a non-JavaScript block ends it."""
    heading, lang, body, counts = "", None, [], {}
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\w*)\s*$", line)
        if fence and (lang is None or fence.group(1)):
            lang, body = fence.group(1), []
        elif fence:
            if lang == "javascript":
                counts[heading] = counts.get(heading, 0) + 1
                yield heading, counts[heading], "\n".join(body)
            lang = None
        elif lang is not None and not (lang != "javascript" and re.match(r"^#{2,} ", line)):
            body.append(line)
        elif line.startswith("#"):
            lang, heading = None, line.lstrip("#").strip()


@pytest.mark.parametrize(
    "seed, heading, block, plugins",
    [
        pytest.param(*entry, marks=pytest.mark.skip(reason=_reason(entry[3])), id=f"{entry[0][:3]}-{entry[1]}-{entry[2]}")
        for entry in PENDING
    ],
)
def test_pending_seed_example(seed, heading, block, plugins):
    # the example's first line, ``import { <Plugin> } from 's3db.js'``; its issue replaces this with the port
    for name in plugins:
        assert getattr(s3db_nb.plugins, name) is not None


def test_every_pending_entry_still_names_an_unbuilt_plugin():
    """Once every plugin an example names is built, the example is ported and leaves PENDING."""
    ready = [(seed[:3], heading, block) for seed, heading, block, plugins in PENDING if not unbuilt(plugins)]
    assert ready == []


def test_every_pending_entry_names_only_planned_plugins_and_a_known_seed():
    for seed, _, block, plugins in PENDING:
        assert seed in (_GUIDE_21, _GUIDE) and block >= 1 and plugins and set(plugins) <= set(PLANNED)


def test_the_pending_list_matches_the_seeds():
    if not SEEDS.is_dir():
        pytest.skip(f"the seeds are not at {SEEDS} (set S3DB_SEEDS); the pending list is checked where they are")
    found = []
    for seed in (_GUIDE_21, _GUIDE):
        for heading, block, code in javascript_blocks((SEEDS / seed).read_text(encoding="utf-8")):
            named = tuple(sorted(name for name in PLANNED if re.search(rf"\b{name}\b", code)))
            if unbuilt(named):
                found.append((seed, heading, block, named))
    assert sorted(found) == sorted((s, h, b, tuple(sorted(p))) for s, h, b, p in PENDING)


def test_the_block_reader_sees_past_the_seeds_stray_fence():
    text = "## A\n```javascript\nnew TTLPlugin()\n```\n    leftover();\n```\n\n#### B\n\n```javascript\nnew BackupPlugin()\n```\n"
    assert [(h, n) for h, n, _ in javascript_blocks(text)] == [("A", 1), ("B", 1)]
