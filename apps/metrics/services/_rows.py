"""Writing many plain rows in a few statements, without building a model instance per row.

A poll writes tens of thousands of rows (samples, latest values, SLO states). Django's
``bulk_create`` makes a model instance per row and compiles an INSERT with one
placeholder per value, which cost more than the database's own work. On PostgreSQL rows
are staged: sent once with ``COPY`` into a temporary table, from which one statement
appends them to a table and another upserts them into a second (``INSERT ... SELECT ...
ON CONFLICT``); the rows cross the wire once however many tables they land in. Elsewhere
(SQLite, the embedded demo) the same calls go through ``bulk_create``.

Rows are tuples in the order of ``fields`` (attribute names such as ``service_id``).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

from django.db import connection
from django.db.models import Model

from apps.metrics.services._batch import WRITE_BATCH

_stage_numbers = itertools.count()


def _columns(model: type[Model], fields: Sequence[str]):
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    return [by_attname[name] for name in fields]


def _logged(cursor, sql: str):
    """Let query counting (DEBUG, CaptureQueriesContext) see a statement run on the raw
    driver cursor, so the figures stay honest."""
    debug = getattr(cursor, "debug_sql", None)
    if debug is None:
        return contextlib.nullcontext()
    return debug(sql)


class StagedRows:
    """Rows of ``fields`` (shaped like ``model``'s columns) ready to be written to one or
    more tables. Made by ``staged_rows``; valid inside its ``with`` block."""

    def __init__(self, model: type[Model], fields: Sequence[str], rows: Sequence[tuple]):
        self.fields = tuple(fields)
        self.rows = rows
        self.columns = _columns(model, fields)  # the staged table's, from ``model``
        self.table = ""  # the temporary table, on PostgreSQL

    def _insert(self, model: type[Model]) -> str:
        """``INSERT INTO <model's table> (<its columns for fields>) SELECT <the staged
        columns> FROM <the staged table>``; the two column lists may be named apart."""
        qn = connection.ops.quote_name
        into = ", ".join(qn(f.column) for f in _columns(model, self.fields))
        staged = ", ".join(qn(f.column) for f in self.columns)
        # Identifiers come from the models' _meta and are quoted; no value is in the SQL.
        return (
            f"INSERT INTO {qn(model._meta.db_table)} ({into}) "  # noqa: S608 # nosec B608
            f"SELECT {staged} FROM {qn(self.table)}"
        )

    def append_to(self, model: type[Model]) -> int:
        """Insert every row into ``model``'s table."""
        if not self.rows:
            return 0
        if not self.table:
            model.objects.bulk_create(self._instances(model), batch_size=WRITE_BATCH)
            return len(self.rows)
        with connection.cursor() as cursor:
            cursor.execute(self._insert(model))
        return len(self.rows)

    def upsert_to(self, model: type[Model], *, unique: Sequence[str], update: Sequence[str]) -> int:
        """Insert every row into ``model``'s table, or update ``update`` where a row with
        the same ``unique`` fields exists. The rows must be unique on ``unique``."""
        if not self.rows:
            return 0
        if not self.table:
            model.objects.bulk_create(
                self._instances(model),
                batch_size=WRITE_BATCH,
                update_conflicts=True,
                unique_fields=[f.removesuffix("_id") for f in unique],
                update_fields=[f.removesuffix("_id") for f in update],
            )
            return len(self.rows)
        qn = connection.ops.quote_name
        conflict = ", ".join(qn(f.column) for f in _columns(model, unique))
        updates = ", ".join(
            f"{qn(f.column)} = EXCLUDED.{qn(f.column)}" for f in _columns(model, update)
        )
        with connection.cursor() as cursor:
            # Identifiers from the models' _meta, quoted; no value is in the SQL.
            cursor.execute(
                f"{self._insert(model)} ON CONFLICT ({conflict}) DO UPDATE SET {updates}"  # nosec B608
            )
        return len(self.rows)

    def _instances(self, model: type[Model]) -> list[Model]:
        return [model(**dict(zip(self.fields, row, strict=True))) for row in self.rows]


@contextlib.contextmanager
def staged_rows(
    model: type[Model], fields: Sequence[str], rows: Sequence[tuple]
) -> Iterator[StagedRows]:
    """``rows`` staged for ``append_to`` and ``upsert_to``. On PostgreSQL: a temporary
    table with ``model``'s column types for ``fields``, filled with one ``COPY``; the
    transaction's commit drops it (it lives only in this session, and never in the WAL).
    Must run inside a transaction (the poll's); each call stages into a table of its own."""
    if not connection.in_atomic_block:
        raise RuntimeError(
            "staged_rows must run inside a transaction (its table is dropped at commit)"
        )
    stage = StagedRows(model, fields, rows)
    if connection.vendor != "postgresql" or not rows:
        yield stage
        return
    qn = connection.ops.quote_name
    stage.table = f"slipway_stage_{next(_stage_numbers)}"
    definition = ", ".join(f"{qn(f.column)} {f.db_type(connection)}" for f in stage.columns)
    names = ", ".join(qn(f.column) for f in stage.columns)
    copy_sql = f"COPY {qn(stage.table)} ({names}) FROM STDIN"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {qn(stage.table)} ({definition}) ON COMMIT DROP")
        with _logged(cursor, copy_sql), cursor.cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
    yield stage


def upsert_rows(
    model: type[Model],
    fields: Sequence[str],
    rows: Sequence[tuple],
    *,
    unique: Sequence[str],
    update: Sequence[str],
) -> int:
    """Insert ``rows``, or update ``update`` where a row with the same ``unique`` fields
    exists: on PostgreSQL a COPY and one statement whatever the number of rows."""
    with staged_rows(model, fields, rows) as stage:
        return stage.upsert_to(model, unique=unique, update=update)
