"""Full-text search over chosen fields: BM25 ranking, prefix and fuzzy matching, highlights.

The inverted index lives in PluginStorage, sharded, and every indexed write is persisted before
the write call returns — nothing acknowledged is lost to a crash, and a second process (or a
reconnect) finds the documents without a rebuild.

>>> db.use_plugin(FullTextPlugin(fields={"articles": {"title": 2.0, "body": 1.0}}))
>>> db.resources["articles"].insert({"title": "Café culture", "body": "Espresso in <b>Lisbon</b>"})
>>> db.plugins.fulltext.search("articles", "cafe lisb")      # ranked DataFrame: _score, _highlights

Storage, per indexed resource (``resource=<r>/plugin=full-text/index/…``; the slug s3db.js derives):

* ``terms/shard=<hh>``: postings ``{field: {term: {record id: term frequency}}}`` of the terms
  whose hash falls in that shard;
* ``docs/shard=<hh>``: ``{record id: {"len": {field: terms}, "shards": [term shards]}}`` — the
  document lengths BM25 needs and the list of term shards that hold the document. A record is
  in the index once its entry is here (written last), so a half-finished write never shows up;
* ``manifest``: the shard count and analyzer settings the index was built with.

Cost in requests: an indexed insert, update or delete reads and rewrites its document shard and
every term shard its terms fall in (old and new): ``2 + 2 × T`` with ``T ≤ shards`` (default 8),
shard writes in parallel. ``insert_many`` batches per shard: ``2 × (term shards + doc shards
touched)`` for the whole batch. Every shard write is a compare-and-swap on the ETag, so two
writers touching the same shard never lose each other's postings. ``search`` reads every
document shard and the term shards it needs (all of them with ``prefix``/``fuzzy``), in
parallel, then one GET per returned record.

Fuzzy matching (``rapidfuzz``) and stemming (``snowballstemmer``) come with the ``fulltext`` extra:
``pip install 's3db-nb[fulltext]'``.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import MissingDependencyError, Plugin, PluginError, ProgressArg, make_progress

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Progress, Resource

__all__ = ["FullTextPlugin", "Analyzer", "fold", "bm25_idf", "bm25_term_score", "ENGLISH_STOP_WORDS"]

FORMAT = 1
#: ``language`` code (s3db.js ``"en-US"``) → Snowball stemmer, for ``stemming=True``
_SNOWBALL_BY_CODE = {
    "en": "english", "pt": "portuguese", "es": "spanish", "fr": "french", "de": "german", "it": "italian",
    "nl": "dutch", "sv": "swedish", "no": "norwegian", "da": "danish", "fi": "finnish", "ru": "russian",
}  # fmt: skip
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits (underscore separates)

#: a short English list; pass ``stop_words=[...]`` for another language
ENGLISH_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves""".split()
)


def _missing(package: str, feature: str) -> MissingDependencyError:
    return MissingDependencyError(
        f"FullTextPlugin {feature} needs the package {package!r}, which is not installed.\n"
        f"Install it with:\n  pip install 's3db-nb[fulltext]'\n  (or: pip install {package})"
    )


def fold(word: str, *, case_sensitive: bool = False) -> str:
    """Accent folding and case folding: ``Café`` → ``cafe``, ``Straße`` → ``strasse``
    (``case_sensitive``: accents only, ``Café`` → ``Cafe``)."""
    decomposed = unicodedata.normalize("NFKD", word if case_sensitive else word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# -- the analyzer ---------------------------------------------------------------------------------


class Analyzer:
    """Text → index terms: split on non-letters, case and accent folding, stop words, stemming.

    The same analyzer reads documents and queries, so ``café``, ``Cafe`` and ``CAFÉ`` meet.
    """

    def __init__(
        self,
        *,
        min_length: int = 2,
        stop_words: Iterable[str] | str | None = None,
        stemming: str | None = None,
        case_sensitive: bool = False,
    ) -> None:
        self.min_length = min_length
        self.case_sensitive = case_sensitive
        if stop_words == "english":
            stop_words = ENGLISH_STOP_WORDS
        elif isinstance(stop_words, str):
            raise PluginError(f"stop_words must be None, 'english' or a list of words, got {stop_words!r}")
        self.stop_words = frozenset(fold(w) for w in (stop_words or ()))
        self.stemming = stemming
        self._stemmer: Any = None
        self._stem_lock = threading.Lock()  # snowball stemmers keep state between calls
        if stemming:
            try:
                import snowballstemmer
            except ImportError:
                raise _missing("snowballstemmer", f"stemming={stemming!r}") from None
            try:
                self._stemmer = snowballstemmer.stemmer(stemming)
            except KeyError:
                languages = ", ".join(snowballstemmer.algorithms())
                raise PluginError(f"stemming={stemming!r} is not a Snowball language; use one of: {languages}") from None

    def settings(self) -> dict[str, Any]:
        """What changes the terms (stored in the manifest: an index built otherwise needs a rebuild)."""
        settings: dict[str, Any] = {"min_length": self.min_length, "stop_words": sorted(self.stop_words), "stemming": self.stemming}
        if self.case_sensitive:  # only when on: indexes built before the option existed stay valid
            settings["case_sensitive"] = True
        return settings

    def _terms_of_word(self, word: str) -> list[str]:
        out = []
        for part in _WORD.findall(fold(word, case_sensitive=self.case_sensitive)):  # folding can split a word (``½`` → ``1⁄2``)
            if len(part) < self.min_length or fold(part) in self.stop_words:
                continue
            if self._stemmer is not None:
                with self._stem_lock:
                    part = self._stemmer.stemWord(part)
            out.append(part)
        return out

    def spans(self, text: str) -> list[tuple[int, int, list[str]]]:
        """``(start, end, terms)`` for every word of ``text`` (NFC-normalised first, offsets into that)."""
        return [(m.start(), m.end(), self._terms_of_word(m.group())) for m in _WORD.finditer(unicodedata.normalize("NFC", text))]

    def terms(self, text: str) -> list[str]:
        """The index terms of ``text``, in order (repeats kept: they are the term frequencies)."""
        return [t for _, _, terms in self.spans(text) for t in terms]

    def query_terms(self, text: str) -> list[tuple[str, str]]:
        """Distinct ``(term, unstemmed folded word)`` pairs of a query; the second feeds prefix matching."""
        seen: dict[str, str] = {}
        for word in _WORD.findall(unicodedata.normalize("NFC", text)):
            folded = [
                p
                for p in _WORD.findall(fold(word, case_sensitive=self.case_sensitive))
                if len(p) >= self.min_length and fold(p) not in self.stop_words
            ]
            for raw, term in zip(folded, self._terms_of_word(word)):
                seen.setdefault(term, raw)
        return list(seen.items())


# -- BM25 -------------------------------------------------------------------------------------------


def bm25_idf(n_docs: int, df: int) -> float:
    """Inverse document frequency, Lucene's form ``ln(1 + (N − df + ½) / (df + ½))`` (never negative)."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25_term_score(tf: float, doc_len: float, avg_len: float, idf: float, k1: float, b: float) -> float:
    """One term's BM25 contribution in one field of one document."""
    norm = k1 * (1.0 - b + b * (doc_len / avg_len if avg_len else 0.0))
    return idf * tf * (k1 + 1.0) / (tf + norm)


# -- documents and shards ----------------------------------------------------------------------------


@dataclass
class _Doc:
    """One record as the index sees it: term frequencies and length per field."""

    tf: dict[str, dict[str, int]] = field(default_factory=dict)  # field → term → count
    length: dict[str, int] = field(default_factory=dict)


def _shard(value: str, shards: int) -> str:
    digest = hashlib.md5(value.encode("utf-8"), usedforsecurity=False).digest()
    return f"{int.from_bytes(digest[:4], 'big') % shards:02x}"


def _field_text(record: Mapping[str, Any], path: str) -> str:
    """The text of a (dotted) field: strings as they are, lists joined, numbers written out."""
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value if isinstance(v, (str, int, float)) and not isinstance(v, bool))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


class _PendingBatch:
    """Records inserted by running ``insert_many`` calls, indexed together when a call returns."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.callers: set[int] = set()  # threads inside insert_many (it may run its inserts inline)
        self.records: dict[str, Mapping[str, Any]] = {}

    def take(self) -> dict[str, Mapping[str, Any]]:
        with self.lock:
            records, self.records = self.records, {}
            return records


# -- the plugin ----------------------------------------------------------------------------------------


class FullTextPlugin(Plugin):
    """Index chosen string fields per resource and search them with BM25.

    Options: ``fields`` (``{"articles": ["title", "body"]}`` or with boosts
    ``{"articles": {"title": 2.0, "body": 1.0}}``; dotted paths reach nested fields), ``k1``/``b``
    (BM25), ``min_length`` (shortest term), ``stop_words`` (None, ``"english"`` or a list),
    ``stemming`` (a Snowball language such as ``"english"``; needs the ``fulltext`` extra),
    ``shards`` (term and document shards per resource, 1–256), ``prefix_weight`` (what a prefix
    match counts against an exact one), ``fuzzy_weight`` (factor per edit of a fuzzy match),
    ``fuzzy_distance`` (max edits; None: 0 up to 2 letters, 1 up to 5, else 2), ``snippet_chars``.

    s3db.js names, same meaning: ``fields=["title", "body"]`` (a plain list: every resource you
    create that has any of them is indexed on them), ``resources={"articles": {"fields": [...],
    "weights": {"title": 3}}}``, ``field_weights`` (boost per field name, every resource),
    ``min_word_length`` (= ``min_length``), ``max_results`` (default ``limit`` of ``search``),
    ``fuzzy_search`` (default ``fuzzy`` of ``search``), ``stemming=True`` (the Snowball stemmer
    of ``language``, default ``"en-US"``), ``highlight_tags={"start": "<mark>", "end": "</mark>"}``
    and ``enabled`` (False: nothing is indexed; searching what is indexed still works),
    ``case_sensitive`` (``Apple`` and ``apple`` become different terms; accents are still folded),
    ``index_name`` (also ``index_resource`` / ``resource_names={"index": ...}``: s3db.js names the
    index resource; here it names the folder of the index, ``index`` by default, so two plugins
    can keep separate indexes of one resource), ``auto_reindex`` (False: writes leave the index
    alone; ``rebuild_index`` / ``index_record`` / ``remove_from_index`` change it),
    ``batch_size`` (documents per index write round of ``insert_many``, default 100) and
    ``max_index_size`` (documents one resource's index holds at most; later new records are not
    indexed, a warning says so and ``get_index_stats()[r]["skipped"]`` counts them; costs one
    GET per document shard on each indexing write while set).
    """

    defaults = {
        "fields": None,
        "k1": 1.2,
        "b": 0.75,
        "min_length": 2,
        "stop_words": None,
        "stemming": None,
        "shards": 8,
        "prefix_weight": 0.5,
        "fuzzy_weight": 0.5,
        "fuzzy_distance": None,
        "snippet_chars": 160,
        "resources": None,
        "field_weights": None,
        "min_word_length": None,
        "max_results": None,
        "fuzzy_search": False,
        "language": "en-US",
        "highlight_tags": None,
        "enabled": True,
        "case_sensitive": False,
        "index_name": None,
        "index_resource": None,
        "resource_names": None,
        "auto_reindex": True,
        "batch_size": 100,
        "max_index_size": None,
    }
    extra = "fulltext"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        opts = self.options
        if opts["min_word_length"] is not None:
            opts["min_length"] = opts["min_word_length"]
        self._any_resource_fields = self._plain_field_list(opts["fields"])
        self._weights = self._check_weights(opts["field_weights"])
        self.fields = self._fields_by_resource(opts["fields"], opts["resources"])
        if opts["max_results"] is not None and (not isinstance(opts["max_results"], int) or opts["max_results"] < 1):
            raise PluginError(f"FullTextPlugin: max_results must be a whole number ≥ 1, got {opts['max_results']!r}")
        tags = opts["highlight_tags"] or {"start": "<mark>", "end": "</mark>"}
        if not isinstance(tags, Mapping) or set(tags) != {"start", "end"}:
            raise PluginError(f"FullTextPlugin: highlight_tags must be {{'start': '<mark>', 'end': '</mark>'}}, got {tags!r}")
        self.highlight_tags = (str(tags["start"]), str(tags["end"]))
        opts["stemming"] = self._stemmer_language(opts["stemming"], opts["language"])
        for name in ("k1", "prefix_weight", "fuzzy_weight"):
            if not isinstance(opts[name], (int, float)) or isinstance(opts[name], bool) or opts[name] < 0:
                raise PluginError(f"FullTextPlugin: {name} must be a number ≥ 0, got {opts[name]!r}")
        if not isinstance(opts["b"], (int, float)) or not 0 <= opts["b"] <= 1:
            raise PluginError(f"FullTextPlugin: b must be between 0 and 1, got {opts['b']!r}")
        if not isinstance(opts["shards"], int) or not 1 <= opts["shards"] <= 256:
            raise PluginError(f"FullTextPlugin: shards must be an integer from 1 to 256, got {opts['shards']!r}")
        if not isinstance(opts["min_length"], int) or opts["min_length"] < 1:
            raise PluginError(f"FullTextPlugin: min_length must be an integer ≥ 1, got {opts['min_length']!r}")
        if opts["fuzzy_distance"] is not None and (not isinstance(opts["fuzzy_distance"], int) or opts["fuzzy_distance"] < 0):
            raise PluginError(f"FullTextPlugin: fuzzy_distance must be None (automatic) or an integer ≥ 0, got {opts['fuzzy_distance']!r}")
        self.index_name = self._index_folder(opts["index_name"], opts["index_resource"], opts["resource_names"])
        for name in ("batch_size", "max_index_size"):
            value = opts[name]
            if (value is not None or name == "batch_size") and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise PluginError(
                    f"FullTextPlugin: {name} must be a whole number ≥ 1{' or None' if name == 'max_index_size' else ''}, got {value!r}"
                )
        for name in ("case_sensitive", "auto_reindex"):
            if not isinstance(opts[name], bool):
                raise PluginError(f"FullTextPlugin: {name} must be True or False, got {opts[name]!r}")
        self.analyzer = Analyzer(
            min_length=opts["min_length"], stop_words=opts["stop_words"], stemming=opts["stemming"], case_sensitive=opts["case_sensitive"]
        )
        self.shards = opts["shards"]
        self.skipped: Counter[str] = Counter()  # documents left out by max_index_size, per resource
        self._attached: dict[str, Resource] = {}
        self._stale: dict[str, str] = {}
        self._pending: dict[str, _PendingBatch] = {}
        self._shard_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @staticmethod
    def _index_folder(index_name: Any, index_resource: Any, resource_names: Any) -> str:
        """s3db.js names the index resource (``indexName``, ``indexResource``, ``resourceNames.index``);
        here it names the folder the index lives in under each resource's plugin key."""
        if resource_names is not None:
            if not isinstance(resource_names, Mapping) or set(resource_names) - {"index"}:
                raise PluginError(f"FullTextPlugin: resource_names takes {{'index': 'name'}}, got {resource_names!r}")
            resource_names = resource_names.get("index")
        given = [v for v in (index_name, index_resource, resource_names) if v is not None]
        if len(set(given)) > 1:
            raise PluginError(f"FullTextPlugin: index_name, index_resource and resource_names['index'] name one thing; got {given!r}")
        name = given[0] if given else "index"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
            raise PluginError(f"FullTextPlugin: index_name must be letters, digits, '_', '-' or '.', e.g. 'search_indexes'; got {name!r}")
        return name

    @staticmethod
    def _plain_field_list(fields: Any) -> list[str]:
        """s3db.js ``fields=["title", "body"]``: names indexed on whichever resources have them."""
        if fields is None or isinstance(fields, Mapping):
            return []
        names = [fields] if isinstance(fields, str) else list(fields) if isinstance(fields, Iterable) else None
        if not names or not all(isinstance(n, str) and n for n in names):
            raise PluginError(f"FullTextPlugin: fields must name at least one field, e.g. fields=['title', 'body']; got {fields!r}")
        return names

    @staticmethod
    def _check_weights(weights: Any) -> dict[str, float]:
        if weights is None:
            return {}
        if not isinstance(weights, Mapping) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in weights.values()
        ):
            raise PluginError(f"FullTextPlugin: field_weights must map field names to numbers > 0, e.g. {{'title': 3}}; got {weights!r}")
        return {str(k): float(v) for k, v in weights.items()}

    @staticmethod
    def _stemmer_language(stemming: Any, language: Any) -> str | None:
        """``stemming=True`` (s3db.js) → the Snowball language of ``language`` (``"pt-BR"`` → portuguese)."""
        if stemming is not True:
            return stemming or None
        code = str(language or "en").split("-")[0].lower()
        if code not in _SNOWBALL_BY_CODE:
            raise PluginError(f"FullTextPlugin: no stemmer for language {language!r}; pass stemming='<Snowball language>' instead")
        return _SNOWBALL_BY_CODE[code]

    def _fields_by_resource(self, fields: Any, resources: Any) -> dict[str, dict[str, float]]:
        """``fields={resource: ...}`` and/or s3db.js ``resources={resource: {"fields", "weights"}}`` merged."""
        spec: dict[str, Any] = dict(fields) if isinstance(fields, Mapping) else {}
        if resources is not None:
            if not isinstance(resources, Mapping):
                raise PluginError(
                    f"FullTextPlugin: resources must be {{'articles': {{'fields': [...], 'weights': {{...}}}}}}, got {resources!r}"
                )
            for name, conf in resources.items():
                if isinstance(conf, Mapping) and "fields" in conf:
                    weights = dict(conf.get("weights") or {})
                    spec[name] = {f: weights.get(f, self._weights.get(f, 1.0)) for f in conf["fields"]}
                else:
                    spec[name] = conf
        if not spec and self._any_resource_fields:
            return {}
        out = self._normalise_fields(spec)
        for name, boosts in out.items():  # field_weights boost fields a resource spec left at 1
            out[name] = {f: (self._weights.get(f, b) if b == 1.0 else b) for f, b in boosts.items()}
        return out

    @staticmethod
    def _normalise_fields(fields: Any) -> dict[str, dict[str, float]]:
        hint = 'e.g. fields={"articles": ["title", "body"]} or {"articles": {"title": 2.0, "body": 1.0}}'
        if not isinstance(fields, Mapping) or not fields:
            raise PluginError(f"FullTextPlugin needs fields: which fields of which resources to index, {hint}; got {fields!r}")
        out: dict[str, dict[str, float]] = {}
        for resource, spec in fields.items():
            if isinstance(spec, str):
                spec = [spec]
            if isinstance(spec, Mapping):
                boosts = dict(spec)
            elif isinstance(spec, Iterable):
                boosts = {name: 1.0 for name in spec}
            else:
                boosts = {}
            if not boosts or not all(isinstance(k, str) and k for k in boosts):
                raise PluginError(f"FullTextPlugin: fields[{resource!r}] must name at least one field, {hint}; got {spec!r}")
            for name, boost in boosts.items():
                if not isinstance(boost, (int, float)) or isinstance(boost, bool) or boost <= 0:
                    raise PluginError(f"FullTextPlugin: the boost of {resource}.{name} must be a number > 0, got {boost!r}")
            out[str(resource)] = {k: float(v) for k, v in boosts.items()}
        return out

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_install(self) -> None:
        if not self.options["enabled"]:
            return
        db = self._db()
        for resource in db.resources.values():
            self._adopt(resource)
        for name in self.fields:
            if name in db:
                self._attach(db.resource(name))
        self.add_database_hook("after_create_resource", self._on_resource_created)

    def _adopt(self, resource: Resource) -> None:
        """With a plain ``fields=[...]`` list: index a user resource on the listed fields it has."""
        if not self._any_resource_fields or resource.name in self.fields or resource.created_by != "user":
            return
        present = [f for f in self._any_resource_fields if resource.schema.field(f) is not None]
        if present:
            self.fields[resource.name] = {f: self._weights.get(f, 1.0) for f in present}

    def on_uninstall(self, purge_data: bool = False) -> None:
        # the base class takes the hooks back; a later install attaches afresh
        self._attached.clear()
        self._stale.clear()

    def _on_resource_created(self, resource: Resource) -> None:
        self._adopt(resource)
        if resource.name in self.fields:  # created after the plugin, or redefined (a new object)
            self._attach(resource)

    def _attach(self, resource: Resource) -> None:
        if self._attached.get(resource.name) is resource:
            return
        unknown = [f for f in self.fields[resource.name] if resource.schema.field(f) is None]
        if unknown:
            known = ", ".join(resource.schema.user_attributes())
            raise PluginError(f"FullTextPlugin: resource {resource.name!r} has no field(s) {', '.join(unknown)}; its fields: {known}")
        name = resource.name
        self._pending.setdefault(name, _PendingBatch())
        self._attached[name] = resource
        if not self.options["auto_reindex"]:  # the index changes only by rebuild_index / index_record
            self._check_manifest(resource)
            return
        self.add_hook(resource, "after_insert", lambda record: self._after_insert(name, record))
        self.add_hook(resource, "after_update", lambda record: self._apply(name, {record["id"]: self._analyze(name, record)}))
        self.add_hook(resource, "after_delete", lambda record: self._apply(name, {record["id"]: None}))
        self.add_middleware(resource, "insert_many", lambda call_next, *a, **k: self._batched(name, call_next, *a, **k))
        self.add_middleware(resource, "delete_all", lambda call_next, *a, **k: self._after_delete_all(name, call_next(*a, **k)))
        self._check_manifest(resource)

    def _manifest(self, resource: str) -> dict[str, Any]:
        return {"format": FORMAT, "shards": self.shards, "fields": sorted(self.fields[resource]), "analyzer": self.analyzer.settings()}

    def _check_manifest(self, resource: Resource) -> None:
        """Write the manifest of a new index; flag an index built with other settings (1 GET, +1 PUT when new)."""
        storage = self.get_storage()
        key = self._key(resource.name, "manifest")
        stored = storage.get(key)
        wanted = self._manifest(resource.name)
        if stored is None:
            if resource.list_ids(limit=1):
                self.log.warning(
                    "resource %r already has records that are not indexed; call rebuild_index(%r)", resource.name, resource.name
                )
            storage.set_if_not_exists(key, wanted, behavior="body-only")
            return
        differs = [k for k in wanted if stored.get(k) != wanted[k]]
        if differs:
            self._stale[resource.name] = ", ".join(differs)
            self.log.warning(
                "the index of %r was built with other %s; call rebuild_index(%r)", resource.name, self._stale[resource.name], resource.name
            )

    # -- keys and shard I/O ---------------------------------------------------------------------------

    def _key(self, resource: str, *parts: str) -> str:
        return self.get_storage().get_plugin_key(resource, self.index_name, *parts)

    def _term_key(self, resource: str, shard: str) -> str:
        return self._key(resource, "terms", f"shard={shard}")

    def _doc_key(self, resource: str, shard: str) -> str:
        return self._key(resource, "docs", f"shard={shard}")

    def _all_shards(self) -> list[str]:
        return [f"{i:02x}" for i in range(self.shards)]

    def _local_lock(self, key: str) -> threading.Lock:
        # serialises this process's writers of one shard; the ETag CAS handles other processes
        with self._locks_guard:
            return self._shard_locks.setdefault(key, threading.Lock())

    def _read(self, key: str) -> tuple[dict[str, Any], str | None]:
        data, etag = self.get_storage().get_with_version(key)
        return (data or {}), etag

    def _cas(
        self, key: str, mutate: Callable[[dict[str, Any]], dict[str, Any] | None], current: tuple[dict[str, Any], str | None] | None = None
    ) -> None:
        """Read-modify-write ``key`` until the conditional PUT wins (1 GET + 1 PUT without contention).

        ``mutate`` returns the new data, or None when there is nothing to write."""
        storage = self.get_storage()
        with self._local_lock(key):
            while True:
                data, etag = current if current is not None else self._read(key)
                current = None
                new = mutate(data)
                if new is None:
                    return
                if etag is None:
                    done = storage.set_if_not_exists(key, new, behavior="body-only")
                else:
                    done = storage.set_if_version(key, new, etag, behavior="body-only")
                if done is not None:
                    return

    # -- indexing ----------------------------------------------------------------------------------------

    def _analyze(self, resource: str, record: Mapping[str, Any]) -> _Doc:
        doc = _Doc()
        for name in self.fields[resource]:
            terms = self.analyzer.terms(_field_text(record, name))
            doc.length[name] = len(terms)
            if terms:
                doc.tf[name] = dict(Counter(terms))
        return doc

    def _after_insert(self, resource: str, record: Mapping[str, Any]) -> None:
        pending = self._pending[resource]
        # insert_many runs its inserts on the pool threads ("s3db_N"), or inline on the calling
        # thread (memory://); those wait for the batch. Any other thread's insert is indexed now.
        with pending.lock:
            here = threading.current_thread()
            if pending.active and (here.name.startswith("s3db_") or here.ident in pending.callers):
                pending.records[record["id"]] = record
                return
        self._apply(resource, {record["id"]: self._analyze(resource, record)})

    def _batched(self, resource: str, call_next: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        pending = self._pending[resource]
        with pending.lock:
            pending.active += 1
            pending.callers.add(threading.get_ident())
        try:
            return call_next(*args, **kwargs)
        finally:
            with pending.lock:
                pending.active -= 1
                pending.callers.discard(threading.get_ident())
            records = list(pending.take().items())  # ours, and perhaps some of a concurrent batch: both fine
            size = self.options["batch_size"]
            for start in range(0, len(records), size):  # one write round per batch_size documents
                self._apply(resource, {rid: self._analyze(resource, r) for rid, r in records[start : start + size]})

    def _after_delete_all(self, resource: str, result: Any) -> Any:
        self.clear_index(resource)
        return result

    def _apply(self, resource: str, changes: Mapping[str, _Doc | None]) -> None:
        """Put (``_Doc``) or remove (None) documents: term shards first, then document shards.

        A document counts as indexed only through its document-shard entry, and only postings in
        the term shards that entry lists are read, so a write cut short never shows half-done.
        """
        if self.options["max_index_size"] is not None:
            changes = self._within_size(resource, changes)
        if not changes:
            return
        db = self._db()
        by_doc_shard: dict[str, list[str]] = {}
        for doc_id in changes:
            by_doc_shard.setdefault(_shard(doc_id, self.shards), []).append(doc_id)
        doc_shards = sorted(by_doc_shard)
        read = dict(zip(doc_shards, db.pool.map(lambda s: self._read(self._doc_key(resource, s)), doc_shards)))
        old_shards: dict[str, set[str]] = {}
        for shard, ids in by_doc_shard.items():
            entries = read[shard][0].get("docs", {})
            for doc_id in ids:
                old_shards[doc_id] = set(entries.get(doc_id, {}).get("shards", ()))

        # postings per term shard: doc id → field → term → tf (empty for removals)
        per_shard: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
        new_shards: dict[str, list[str]] = {}
        for doc_id, doc in changes.items():
            for shard in old_shards[doc_id]:
                per_shard.setdefault(shard, {}).setdefault(doc_id, {})
            placed: set[str] = set()
            for name, counts in doc.tf.items() if doc is not None else ():
                for term, tf in counts.items():
                    shard = _shard(term, self.shards)
                    per_shard.setdefault(shard, {}).setdefault(doc_id, {}).setdefault(name, {})[term] = tf
                    placed.add(shard)
            new_shards[doc_id] = sorted(placed)

        def update_terms(shard: str) -> None:
            docs = per_shard[shard]

            def mutate(data: dict[str, Any]) -> dict[str, Any]:
                postings: dict[str, dict[str, dict[str, int]]] = data.get("postings", {})
                for terms in postings.values():
                    for term in list(terms):
                        hits = terms[term]
                        for doc_id in docs:
                            hits.pop(doc_id, None)
                        if not hits:
                            del terms[term]
                for doc_id, fields in docs.items():
                    for name, counts in fields.items():
                        target = postings.setdefault(name, {})
                        for term, tf in counts.items():
                            target.setdefault(term, {})[doc_id] = tf
                return {"postings": {k: v for k, v in postings.items() if v}}

            self._cas(self._term_key(resource, shard), mutate)

        db.pool.map(update_terms, sorted(per_shard))

        def update_docs(shard: str) -> None:
            ids = by_doc_shard[shard]

            def mutate(data: dict[str, Any]) -> dict[str, Any]:
                entries = data.get("docs", {})
                for doc_id in ids:
                    doc = changes[doc_id]
                    if doc is None:
                        entries.pop(doc_id, None)
                    else:
                        entries[doc_id] = {"len": doc.length, "shards": new_shards[doc_id]}
                return {"docs": entries}

            self._cas(self._doc_key(resource, shard), mutate, current=read[shard])

        db.pool.map(update_docs, doc_shards)

    def _within_size(self, resource: str, changes: Mapping[str, _Doc | None]) -> dict[str, _Doc | None]:
        """``changes`` without the new documents that would take the index past ``max_index_size``
        (reads every document shard: ``shards`` GETs per indexing write while the option is set)."""
        present: set[str] = set()
        for data in self._db().pool.map(lambda s: self._read(self._doc_key(resource, s))[0], self._all_shards()):
            present.update(data.get("docs", {}))
        room = self.options["max_index_size"] - len(present) + sum(1 for d, doc in changes.items() if doc is None and d in present)
        kept: dict[str, _Doc | None] = {}
        left_out = 0
        for doc_id, doc in changes.items():
            if doc is not None and doc_id not in present:
                if room <= 0:
                    left_out += 1
                    continue
                room -= 1
            kept[doc_id] = doc
        if left_out:
            self.skipped[resource] += left_out
            self.log.warning(
                "the index of %r holds max_index_size=%d documents; %d record(s) were not indexed",
                resource,
                self.options["max_index_size"],
                left_out,
            )
        return kept

    # -- maintenance -------------------------------------------------------------------------------------

    def _check_resource(self, resource: Resource | str) -> str:
        name = resource if isinstance(resource, str) else resource.name
        if name not in self.fields:
            raise PluginError(f"FullTextPlugin does not index {name!r}; indexed resources: {', '.join(self.fields)} (add it to fields=)")
        return name

    def rebuild_index(self, resource: Resource | str, *, progress: ProgressArg = None) -> int:
        """Index every record of ``resource`` again from scratch; returns how many were indexed.

        Reads every record (1 LIST per 1 000 + 1 GET each), then rewrites every shard with a
        compare-and-swap: a record inserted meanwhile keeps its postings (its existence is checked).
        ``progress`` counts the records read (streamed: their number is known once all are read).
        """
        name = self._check_resource(resource)
        target = self.resource(name)
        if self._attached.get(name) is not target:
            self._attach(target)
        with make_progress(progress, None, f"rebuilding full-text index of {name}") as bar:
            return self._rebuild(name, target, bar)

    def _rebuild(self, name: str, target: Resource, bar: Progress) -> int:
        """``rebuild_index``'s work: read and analyze every record (``bar`` counts them), then rewrite the shards."""
        docs: dict[str, _Doc] = {}
        for record in target.iter_records():
            docs[record["id"]] = self._analyze(name, record)
            bar.update()
        bar.set_total(len(docs))
        db = self._db()
        storage = self.get_storage()
        exists: dict[str, bool] = {}

        def keep(doc_id: str) -> bool:  # indexed, not in our snapshot: inserted during the rebuild?
            if doc_id not in exists:
                exists[doc_id] = target.exists(doc_id)
            return exists[doc_id]

        shards = self._all_shards()
        for key in storage.list_for_resource(name, f"{self.index_name}/"):
            if key.rsplit("shard=", 1)[-1] not in shards and "shard=" in key:
                storage.delete(key)  # left over from a different shard count

        term_postings: dict[str, dict[str, dict[str, dict[str, int]]]] = {s: {} for s in shards}
        doc_entries: dict[str, dict[str, Any]] = {s: {} for s in shards}
        for doc_id, doc in docs.items():
            placed: set[str] = set()
            for field_name, counts in doc.tf.items():
                for term, tf in counts.items():
                    shard = _shard(term, self.shards)
                    term_postings[shard].setdefault(field_name, {}).setdefault(term, {})[doc_id] = tf
                    placed.add(shard)
            doc_entries[_shard(doc_id, self.shards)][doc_id] = {"len": doc.length, "shards": sorted(placed)}

        def write_terms(shard: str) -> None:
            def mutate(data: dict[str, Any]) -> dict[str, Any]:
                postings = {f: {t: dict(h) for t, h in terms.items()} for f, terms in term_postings[shard].items()}
                for field_name, terms in data.get("postings", {}).items():
                    for term, hits in terms.items():
                        for doc_id, tf in hits.items():
                            if doc_id not in docs and keep(doc_id):
                                postings.setdefault(field_name, {}).setdefault(term, {})[doc_id] = tf
                return {"postings": postings} if postings or data else None  # no empty new shards

            self._cas(self._term_key(name, shard), mutate)

        def write_docs(shard: str) -> None:
            def mutate(data: dict[str, Any]) -> dict[str, Any]:
                entries = dict(doc_entries[shard])
                for doc_id, entry in data.get("docs", {}).items():
                    if doc_id not in docs and keep(doc_id):
                        entries[doc_id] = entry
                return {"docs": entries} if entries or data else None

            self._cas(self._doc_key(name, shard), mutate)

        db.pool.map(write_terms, shards)
        db.pool.map(write_docs, shards)
        storage.set(self._key(name, "manifest"), self._manifest(name), behavior="body-only")
        self._stale.pop(name, None)
        return len(docs)

    def clear_all_indexes(self) -> dict[str, int]:
        """``clear_index`` for every indexed resource that exists; ``{resource: objects deleted}``."""
        db = self._db()
        return {name: self.clear_index(name) for name in self.fields if name in db}

    def rebuild_all_indexes(self, *, progress: ProgressArg = None) -> dict[str, int]:
        """``rebuild_index`` for every indexed resource that exists; ``{resource: records indexed}``.
        ``progress`` reports each resource's rebuild in turn."""
        db = self._db()
        return {name: self.rebuild_index(name, progress=progress) for name in self.fields if name in db}

    def reindex_resource(self, resource: Resource | str) -> int:
        """s3db.js ``reindexResource``: ``rebuild_index``."""
        return self.rebuild_index(resource)

    def index_record(self, resource: Resource | str, record_id: str, data: Mapping[str, Any]) -> None:
        """Index ``data`` as record ``record_id`` of ``resource`` now (replacing what it had); for
        ``auto_reindex=False`` or records written around the plugin. Costs as one indexed write."""
        name = self._check_resource(resource)
        self._apply(name, {str(record_id): self._analyze(name, data)})

    def remove_from_index(self, resource: Resource | str, record_id: str) -> None:
        """Take record ``record_id`` out of the index of ``resource`` (the record itself stays)."""
        self._apply(self._check_resource(resource), {str(record_id): None})

    remove_record_from_index = remove_from_index  # the name s3db.js 21.6.2's code uses

    def get_indexed_fields(self, resource: Resource | str) -> list[str]:
        """The fields of ``resource`` this plugin indexes."""
        return list(self.fields[self._check_resource(resource)])

    def tokenize(self, text: str) -> list[str]:
        """The index terms of ``text`` (what indexing and queries see)."""
        return self.analyzer.terms(text)

    def get_indexed_words(self, resource: Resource | str, limit: int | None = None) -> list[str]:
        """The terms of ``resource``'s index, the ones in most documents first (reads every shard)."""
        name = self._check_resource(resource)
        _, postings = self._load(name, self._all_shards())
        docs: dict[str, set[str]] = {}
        for terms in postings.values():
            for term, hits in terms.items():
                docs.setdefault(term, set()).update(hits)
        ranked = sorted(docs, key=lambda t: (-len(docs[t]), t))
        return ranked if limit is None else ranked[:limit]

    def clear_index(self, resource: Resource | str | None = None) -> int:
        """Delete the index of ``resource`` (a fresh, empty manifest is written), or of every
        indexed resource when None; returns objects deleted."""
        if resource is None:
            return sum(self.clear_all_indexes().values())
        name = self._check_resource(resource)
        storage = self.get_storage()
        keys = storage.list_for_resource(name, f"{self.index_name}/")
        deleted = self._db().client.delete_many(keys) if keys else 0
        storage.set(self._key(name, "manifest"), self._manifest(name), behavior="body-only")
        self._stale.pop(name, None)
        return deleted

    # -- reading the index ---------------------------------------------------------------------------------

    def _load(self, resource: str, term_shards: Iterable[str]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, dict[str, int]]]]:
        """Documents and postings (``field → term → {doc: tf}``), reading shards in parallel.

        Postings are kept only for documents whose entry lists that shard (see ``_apply``)."""
        db = self._db()
        term_shards = sorted(set(term_shards))
        keys = [self._doc_key(resource, s) for s in self._all_shards()] + [self._term_key(resource, s) for s in term_shards]
        loaded = db.pool.map(lambda k: self._read(k)[0], keys)
        docs: dict[str, dict[str, Any]] = {}
        for data in loaded[: self.shards]:
            docs.update(data.get("docs", {}))
        postings: dict[str, dict[str, dict[str, int]]] = {}
        for shard, data in zip(term_shards, loaded[self.shards :]):
            for field_name, terms in data.get("postings", {}).items():
                target = postings.setdefault(field_name, {})
                for term, hits in terms.items():
                    live = {d: tf for d, tf in hits.items() if shard in docs.get(d, {}).get("shards", ())}
                    if live:
                        target.setdefault(term, {}).update(live)
        return docs, postings

    def get_index_stats(self, resource: Resource | str | None = None) -> dict[str, dict[str, Any]]:
        """Per indexed resource: documents, distinct terms and average length per field, postings,
        shards, and whether a rebuild is needed. Reads every shard (2 × shards GETs per resource)."""
        db = self._db()
        names = [self._check_resource(resource)] if resource is not None else [n for n in self.fields if n in db]
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            docs, postings = self._load(name, self._all_shards())
            count = len(docs)
            out[name] = {
                "documents": count,
                "terms": {f: len(postings.get(f, {})) for f in self.fields[name]},
                "avg_length": {f: (sum(d["len"].get(f, 0) for d in docs.values()) / count if count else 0.0) for f in self.fields[name]},
                "postings": sum(len(hits) for terms in postings.values() for hits in terms.values()),
                "shards": self.shards,
                "needs_rebuild": self._stale.get(name),
                "skipped": self.skipped[name],  # left out by max_index_size
                "total_records": count,  # s3db.js names
                "total_words": len({t for terms in postings.values() for t in terms}),
            }
        return out

    # -- search ----------------------------------------------------------------------------------------------

    def _fuzzy_distance(self, term: str, max_distance: int | None = None) -> int:
        if max_distance is not None:
            return max_distance
        if self.options["fuzzy_distance"] is not None:
            return self.options["fuzzy_distance"]
        return 0 if len(term) <= 2 else 1 if len(term) <= 5 else 2

    def _expand(
        self, term: str, raw: str, vocabulary: list[str], prefix: bool, fuzzy: bool, max_distance: int | None = None
    ) -> dict[str, float]:
        """Index terms a query term matches, with weights: exact 1, prefix, fuzzy (per edit)."""
        weights = {term: 1.0}
        if prefix:
            stems = {term, raw} if len(raw) >= self.options["min_length"] else {term}
            for candidate in vocabulary:
                if candidate != term and any(candidate.startswith(s) for s in stems):
                    weights[candidate] = max(weights.get(candidate, 0.0), self.options["prefix_weight"])
        if fuzzy:
            try:
                from rapidfuzz import process
                from rapidfuzz.distance import Levenshtein
            except ImportError:
                raise _missing("rapidfuzz", "fuzzy=True") from None
            limit = self._fuzzy_distance(term, max_distance)
            if limit:
                for candidate, distance, _ in process.extract(
                    term, vocabulary, scorer=Levenshtein.distance, score_cutoff=limit, limit=None
                ):
                    if candidate != term:
                        weight = self.options["fuzzy_weight"] ** distance
                        weights[candidate] = max(weights.get(candidate, 0.0), weight)
        return weights

    def search(
        self,
        resource: Resource | str,
        query: str,
        fields: Iterable[str] | Mapping[str, float] | None = None,
        limit: int | None = None,
        *,
        offset: int = 0,
        fuzzy: bool | None = None,
        prefix: bool = True,
        match: str = "any",
        highlight: bool = False,
        min_score: float | None = None,
        max_distance: int | None = None,
        exact_match: bool = False,
    ) -> pd.DataFrame:
        """Ranked records matching ``query``: their fields plus ``_score`` and ``_highlights``.

        ``fields`` restricts (a list) or re-weights (``{field: boost}``) the indexed fields;
        ``prefix`` lets ``caf`` find ``cafe``; ``fuzzy`` tolerates typos (``rapidfuzz``);
        ``match="all"`` keeps only records matching every query term. ``_highlights`` maps each
        matching field to an HTML snippet: text escaped, matched words in ``<mark>``.
        s3db.js spellings: ``score`` (= ``_score``) and ``matched_fields`` columns; ``highlight=True``
        adds ``highlighted`` (field → text with ``highlight_tags``); ``min_score`` drops weaker
        hits; ``max_distance`` caps fuzzy edits; ``exact_match=True`` turns prefix and fuzzy matching
        off. ``limit`` defaults to ``max_results`` (else 10),
        ``fuzzy`` to ``fuzzy_search``.
        Cost: the document shards and the needed term shards (all with prefix/fuzzy), then 1 GET per result.
        """
        import pandas as pd

        limit = limit if limit is not None else self.options["max_results"] or 10
        fuzzy = self.options["fuzzy_search"] if fuzzy is None else fuzzy
        if exact_match:  # s3db.js exactMatch: whole terms only
            prefix = fuzzy = False
        name = self._check_resource(resource)
        if name in self._stale:
            raise PluginError(f"the index of {name!r} was built with other {self._stale[name]}; call rebuild_index({name!r}) first")
        if match not in ("any", "all"):
            raise PluginError(f"match must be 'any' or 'all', got {match!r}")
        configured = self.fields[name]
        if fields is None:
            boosts = dict(configured)
        else:
            wanted = (
                dict(fields)
                if isinstance(fields, Mapping)
                else {f: configured.get(f) for f in ([fields] if isinstance(fields, str) else fields)}
            )
            unknown = [f for f in wanted if f not in configured]
            if unknown:
                raise PluginError(f"field(s) {', '.join(unknown)} of {name!r} are not indexed; indexed: {', '.join(configured)}")
            boosts = {f: float(b if b is not None else configured[f]) for f, b in wanted.items()}
        columns = ["id", *configured, "_score", "_highlights", "score", "matched_fields", *(["highlighted"] if highlight else [])]
        query_terms = self.analyzer.query_terms(query or "")
        if not query_terms:
            return pd.DataFrame(columns=columns)

        term_shards = self._all_shards() if (prefix or fuzzy) else [_shard(t, self.shards) for t, _ in query_terms]
        docs, postings = self._load(name, term_shards)
        n_docs = len(docs)
        if n_docs == 0:
            return pd.DataFrame(columns=columns)
        avg_len = {f: sum(d["len"].get(f, 0) for d in docs.values()) / n_docs for f in boosts}
        vocabulary = sorted({t for f in boosts for t in postings.get(f, {})})
        k1, b = float(self.options["k1"]), float(self.options["b"])

        scores: dict[str, float] = {}
        matched: dict[str, dict[str, set[str]]] = {}  # doc → field → index terms that matched
        hits_per_doc: Counter[str] = Counter()
        for term, raw in query_terms:
            best: dict[str, float] = {}
            for candidate, weight in self._expand(term, raw, vocabulary, prefix, fuzzy, max_distance).items():
                per_doc: dict[str, float] = {}
                for field_name, boost in boosts.items():
                    hits = postings.get(field_name, {}).get(candidate)
                    if not hits:
                        continue
                    idf = bm25_idf(n_docs, len(hits))
                    for doc_id, tf in hits.items():
                        doc_len = docs[doc_id]["len"].get(field_name, 0)
                        per_doc[doc_id] = per_doc.get(doc_id, 0.0) + boost * bm25_term_score(tf, doc_len, avg_len[field_name], idf, k1, b)
                        matched.setdefault(doc_id, {}).setdefault(field_name, set()).add(candidate)
                for doc_id, score in per_doc.items():  # a query term scores by its best match
                    best[doc_id] = max(best.get(doc_id, 0.0), weight * score)
            for doc_id, score in best.items():
                scores[doc_id] = scores.get(doc_id, 0.0) + score
                hits_per_doc[doc_id] += 1
        wanted_hits = len(query_terms) if match == "all" else 1
        floor = 0.0 if min_score is None else float(min_score)
        scores = {d: s for d, s in scores.items() if s > 0 and s >= floor and hits_per_doc[d] >= wanted_hits}
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[offset : offset + limit]
        records = {r["id"]: r for r in self.resource(name).get_many([d for d, _ in ranked])}
        rows = []
        for doc_id, score in ranked:
            record = records.get(doc_id)
            if record is None:  # deleted by a write that was cut short before it reached the index
                continue
            fields_hit = [f for f in configured if f in matched[doc_id]]
            highlights = {f: self.highlight(_field_text(record, f), matched[doc_id][f]) for f in fields_hit}
            row = {**dict(record), "_score": score, "_highlights": highlights, "score": score, "matched_fields": fields_hit}
            if highlight:
                start, end = self.highlight_tags
                row["highlighted"] = {
                    f: self.highlight(_field_text(record, f), matched[doc_id][f], open_tag=start, close_tag=end) for f in fields_hit
                }
            rows.append(row)
        if not rows:
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame(rows)
        ordered = [c for c in columns if c in frame.columns] + [c for c in frame.columns if c not in columns]
        return frame[ordered].reset_index(drop=True)

    def highlight(
        self, text: str, terms: Iterable[str], *, tag: str = "mark", open_tag: str | None = None, close_tag: str | None = None
    ) -> str:
        """``text`` as escaped HTML with the words whose index terms are in ``terms`` wrapped in ``<tag>``
        (or between the literal ``open_tag``/``close_tag`` markup), cut to about ``snippet_chars`` around the first match."""
        opening = open_tag if open_tag is not None else f"<{tag}>"
        closing = close_tag if close_tag is not None else f"</{tag}>"
        wanted = set(terms)
        text = unicodedata.normalize("NFC", text)
        spans = [(s, e) for s, e, found in self.analyzer.spans(text) if wanted.intersection(found)]
        width = int(self.options["snippet_chars"])
        start, end = 0, len(text)
        if len(text) > width:
            first = spans[0][0] if spans else 0
            start = max(0, min(first - width // 3, len(text) - width))
            end = start + width
            while start > 0 and text[start - 1].isalnum():  # do not cut words in half
                start -= 1
            while end < len(text) and text[end].isalnum():
                end += 1
        out, cursor = [], start
        for s, e in spans:
            if s < start or e > end:
                continue
            out.append(html.escape(text[cursor:s]))
            out.append(f"{opening}{html.escape(text[s:e])}{closing}")
            cursor = e
        out.append(html.escape(text[cursor:end]))
        return ("…" if start > 0 else "") + "".join(out) + ("…" if end < len(text) else "")

    def search_records(self, resource: Resource | str, query: str, **options: Any) -> list[dict[str, Any]]:
        """``search`` as a list of dicts (s3db.js ``searchRecords``): ``_score`` and the s3db.js keys
        ``_search_score``, ``_matched_fields`` and ``_highlights`` included."""
        rows = self.search(resource, query, **options).to_dict(orient="records")
        return [{**row, "_search_score": row["_score"], "_matched_fields": row["matched_fields"]} for row in rows]

    @property
    def indexed_resources(self) -> list[str]:
        """The resources this plugin indexes (configured in ``fields``), whether they exist yet or not."""
        return list(self.fields)
