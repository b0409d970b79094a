"""Resources as Arrow tables and pandas DataFrames, and DataFrames as resources.

Arrow is the primitive: ``to_arrow`` builds a typed table from the schema (the table below),
``to_pandas`` converts it (integer columns as nullable ``Int64``, JSON fields as dicts and lists,
``dtype_backend=`` as in pandas), ``iter_batches`` streams it (and
``Resource.__arrow_c_stream__`` hands that stream to polars, DuckDB, ``pa.table``).
``insert_frame`` goes the other way, from any frame or Arrow stream: every row is validated
first, bad rows are reported together, then the good rows are written in parallel on the
database's bounded pool. ``upsert_frame`` (new ids inserted, existing records replaced) and
``update_frame`` (rows merged into existing records) write edited frames back the same way.

Schema type → Arrow type (``ARROW_TYPES`` documents the same table in code):

=====================================================  ========================================
attribute                                              Arrow
=====================================================  ========================================
string, text, email, url, uuid, ip4, ip6, mac, cidr,   string
semver, phone, color, currency, country, ean, cron,
locale, timeonly, duration, enum, secret, password
number|integer                                         int64
number, geo:lat, geo:lon, secretNumber                 float64
boolean                                                bool
datetime, date                                         timestamp[ms, tz=UTC]
dateonly                                               date32
money[:d] (d=2), crypto[:d] (d=8), decimal[:d] (d=2)   decimal128(38, d)
array|items:string (and other text item types)         list<string>
array|items:number                                     list<float64>
array|items:boolean                                    list<bool>
embedding:N                                            fixed_size_list<float32, N>
geo:point                                              struct<lat: float64, lon: float64>
nested object                                          struct<…> (children mapped the same way)
json, any, object, secretAny, untyped array            string (JSON text); ``json="auto"``: a
                                                       struct when the values have one shape,
                                                       else ``arrow.json`` (what ``db.sql``
                                                       sees); ``json="struct"``: the nested type
                                                       pyarrow infers
buffer, bits                                           binary
=====================================================  ========================================

The first column is ``id`` (string). Fields that are not in the schema (s3db.js keeps unknown
top-level fields) are never dropped: they go, as one JSON object per row, into the
``_extra`` column. ``to_arrow`` adds ``_extra`` only when some record has such fields;
``iter_batches`` always has it, because a stream's schema is fixed before the first read.
``insert_frame`` reads ``_extra`` back into top-level fields, so round trips are lossless.
A stored value that cannot be read as its column's type (garbled, or written by another client)
is null in its cell, with one ``UnreadableValueWarning`` per table naming the resource, ids and
fields; the read goes on, the column keeps its type, and ``get(id)`` returns the stored text.

The package, by subject: ``arrow_types`` (the table above, column building), ``read``
(``to_arrow``, ``to_pandas``, ``iter_batches``), ``rows`` (frames as records), ``write``
(``insert_frame`` and the bulk validated writes), ``write_back`` (``upsert_frame``,
``update_frame``), ``columnar`` (a frame of plain columns encoded a column at a time), ``infer``
(attribute definitions from a frame), ``json_columns`` (JSON text as structs, JSON or Python
values), ``hive`` (partition fields kept once in exported folders). Importing it
registers the bulk functions behind ``Resource.to_arrow`` & co. (``engine.extensions``).
"""

from __future__ import annotations

from typing import Any

from ..engine import extensions
from . import columnar, hive, json_columns
from .arrow_types import ARROW_TYPES, EXTRA_COLUMN, TIMESTAMP, arrow_leaf, arrow_schema, decimal_scale, plan_columns
from .infer import INFERRED_TYPES, create_resource_from_frame, infer_attributes, infer_definition
from .read import (
    DTYPE_BACKENDS,
    StoredRow,
    UnreadableValueWarning,
    iter_batches,
    iter_record_chunks,
    nullable_integers,
    table_to_pandas,
    to_arrow,
    to_pandas,
    types_mapper,
)  # fmt: skip
from .rows import EncodedRow, as_table, plain_types
from .write import encode_validated, insert_frame, validate_rows, write_encoded, write_validated
from .write_back import update_frame, upsert_frame


def to_dask(resource: Any, **kw: Any) -> Any:
    """``resource.to_dask(...)``: ``s3db_nb.dask`` builds it (imported on first use, so that
    ``import s3db_nb`` stays free of Dask; it raises ``MissingDependencyError`` without it)."""
    from .. import dask as s3db_dask

    return s3db_dask.to_dask(resource, **kw)


extensions.register(
    to_arrow=to_arrow, to_pandas=to_pandas, iter_batches=iter_batches, insert_frame=insert_frame,
    create_resource_from_frame=create_resource_from_frame, to_dask=to_dask, upsert_frame=upsert_frame,
    update_frame=update_frame,
)  # fmt: skip

__all__ = [
    "ARROW_TYPES", "INFERRED_TYPES", "EXTRA_COLUMN", "TIMESTAMP", "arrow_leaf", "arrow_schema", "decimal_scale",
    "plan_columns", "to_arrow", "to_pandas", "iter_batches", "insert_frame", "infer_attributes", "infer_definition",
    "create_resource_from_frame", "iter_record_chunks", "validate_rows", "encode_validated", "write_encoded",
    "write_validated", "StoredRow", "EncodedRow", "UnreadableValueWarning", "columnar", "DTYPE_BACKENDS", "table_to_pandas",
    "types_mapper", "as_table", "plain_types", "to_dask", "upsert_frame", "update_frame", "hive", "json_columns",
    "nullable_integers",
]  # fmt: skip
