"""Writing many plain rows in one statement, without building a model instance per row.

A poll writes thousands of rows (samples, latest values, SLO states). Django's
``bulk_create`` makes a model instance per row and compiles an INSERT with one
placeholder per value, which cost more than the database's own work. On PostgreSQL
samples go through ``COPY`` and upserts through one ``INSERT ... SELECT ... ON CONFLICT``
reading the rows from one JSON parameter; elsewhere (SQLite, the embedded demo) through
``bulk_create``.

Rows are tuples in the order of ``fields`` (attribute names such as ``service_id``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from django.db import connection
from django.db.models import Model

from apps.metrics.services._batch import WRITE_BATCH


def _columns(model: type[Model], fields: Sequence[str]):
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    return [by_attname[name] for name in fields]


def _logged(cursor, sql: str):
    """Let query counting (DEBUG, CaptureQueriesContext) see a statement run on the raw
    driver cursor, so the figures stay honest."""
    debug = getattr(cursor, "debug_sql", None)
    if debug is None:
        import contextlib

        return contextlib.nullcontext()
    return debug(sql)


def copy_rows(model: type[Model], fields: Sequence[str], rows: Sequence[tuple]) -> int:
    """Append ``rows`` to ``model``'s table: one ``COPY`` on PostgreSQL."""
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            [model(**dict(zip(fields, row, strict=True))) for row in rows],
            batch_size=WRITE_BATCH,
        )
        return len(rows)
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in _columns(model, fields))
    sql = f"COPY {qn(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, _logged(cursor, sql), cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)


def upsert_rows(
    model: type[Model],
    fields: Sequence[str],
    rows: Sequence[tuple],
    *,
    unique: Sequence[str],
    update: Sequence[str],
) -> int:
    """Insert ``rows``, or update ``update`` where a row with the same ``unique`` fields
    exists: one statement on PostgreSQL whatever the number of rows."""
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            [model(**dict(zip(fields, row, strict=True))) for row in rows],
            batch_size=WRITE_BATCH,
            update_conflicts=True,
            unique_fields=[f.removesuffix("_id") for f in unique],
            update_fields=[f.removesuffix("_id") for f in update],
        )
        return len(rows)
    qn = connection.ops.quote_name
    columns = _columns(model, fields)
    names = ", ".join(qn(f.column) for f in columns)
    # The rows travel as one JSON array of arrays: the json module dumps it in C, where
    # the driver's array adaptation walks every value in Python.
    values = ", ".join(f"(row->>{i})::{f.cast_db_type(connection)}" for i, f in enumerate(columns))
    conflict = ", ".join(qn(f.column) for f in _columns(model, unique))
    updates = ", ".join(
        f"{qn(f.column)} = EXCLUDED.{qn(f.column)}" for f in _columns(model, update)
    )
    # Identifiers come from the model's _meta and are quoted; every value is bound.
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({names}) "  # noqa: S608 # nosec B608
        f"SELECT {values} FROM json_array_elements(%s::json) AS row "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(rows, default=_json_value)])
    return len(rows)


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value the upsert knows")
