"""What the Spark side writes and the torch side reads, one module per system.

Each module names its system's tables (relative to the lake's ``shards`` layer), their schema
version, their Arrow schemas, the role codes stored in them and the split names. The Spark
builders write exactly these schemas (converted with ``pipeline.schemas.spark_schema``); the
trainer checks them when it reads (``check_schema``). This package imports neither engine: only
the standard library and pyarrow.
"""

from __future__ import annotations

import pyarrow as pa

#: The splits every system's shards use, in the order the trainer visits them.
SPLITS = ("train", "val", "test")


class ContractError(ValueError):
    """A table does not match its contract; the message names the table and the column."""


def check_schema(table: str, actual: pa.Schema, expected: pa.Schema) -> None:
    """Raise :class:`ContractError` naming the first column of ``expected`` that ``actual``
    lacks or stores with another type. Extra columns are allowed (readers project)."""
    for field in expected:
        index = actual.get_field_index(field.name)
        if index < 0:
            raise ContractError(
                f"{table}: column {field.name!r} is missing; it has {actual.names}"
            )
        if not _same_type(actual.field(index).type, field.type):
            raise ContractError(
                f"{table}: column {field.name!r} is {actual.field(index).type}, "
                f"expected {field.type}"
            )


def _same_type(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Types equal up to list/large_list/view flavours and timestamp units or zones."""
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual)
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or (
            pa.types.is_string_view(actual)
        )
    if pa.types.is_list(expected):
        if not (pa.types.is_list(actual) or pa.types.is_large_list(actual)
                or pa.types.is_list_view(actual) or pa.types.is_large_list_view(actual)):
            return False
        return _same_type(actual.value_type, expected.value_type)
    if pa.types.is_struct(expected):
        if not pa.types.is_struct(actual):
            return False
        for i in range(expected.num_fields):
            want = expected.field(i)
            index = actual.get_field_index(want.name)
            if index < 0 or not _same_type(actual.field(index).type, want.type):
                return False
        return True
    return actual.equals(expected)


def manifest_schema() -> pa.Schema:
    """Every system's manifest: one row, its ``json`` column holding counts and sizes."""
    return pa.schema(
        [
            pa.field("schema_version", pa.int64(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("json", pa.string(), nullable=False),
        ]
    )
