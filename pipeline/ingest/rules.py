"""What a valid record of each table looks like, and the check of every record against it.

``validate`` types each table column and gives every record a ``_reason`` (all its failed checks
joined with ``; ``, null = accepted). The internal columns it reads and writes, named here, are
those of the frame that ``pipeline.ingest.parse`` reads.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contracts.dipn import SCREEN_H, SCREEN_W
from pipeline.schemas import (
    BROWSE_ACTIONS,
    BROWSE_PAGES,
    RAW,
    RAW_KEYS,
    TOUCH_BUTTONS,
    TOUCH_EVENTS,
    TOUCH_PAGES,
)

DEFAULT_MIN_TS = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
VALUE_SHOWN = 40  # characters of a bad value quoted in a reason
ENUM_SHOWN = 8  # a longer list of allowed values is named by its size and first values

# Table rules beyond types and keys.
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "browses": {"action": BROWSE_ACTIONS, "page": BROWSE_PAGES},
    "touches": {"event": TOUCH_EVENTS, "page": TOUCH_PAGES, "button": TOUCH_BUTTONS},
}
NON_NEGATIVE: dict[str, tuple[str, ...]] = {
    "purchases": ("amount",),
    "items": ("price",),
    "browses": ("stay_s",),
    "touches": ("duration_ms",),
}
# Closed intervals a number must lie in: touch positions are on the screen.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "touches": {
        "x": (0.0, SCREEN_W),
        "y": (0.0, SCREEN_H),
        "x_end": (0.0, SCREEN_W),
        "y_end": (0.0, SCREEN_H),
    },
}
DISTINCT: dict[str, tuple[tuple[str, str], ...]] = {
    "shares": (("sender_id", "receiver_id"),),
}

# Internal columns carried beside the data columns.
RAW_TEXT, SOURCE, ROW, BLANK, PARSE_ERROR, REASON = (
    "_raw",
    "_source_file",
    "_row_number",
    "_blank",
    "_parse_error",
    "_reason",
)


@dataclass(frozen=True)
class Rules:
    """What a valid record of one table looks like."""

    table: str
    schema: T.StructType
    required: tuple[str, ...]
    enums: dict[str, tuple[str, ...]]
    non_negative: tuple[str, ...]
    distinct: tuple[tuple[str, str], ...]
    min_ts: dt.datetime
    max_ts: dt.datetime
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def for_table(
        cls,
        table: str,
        min_ts: dt.datetime | None = None,
        max_ts: dt.datetime | None = None,
    ) -> Rules:
        """The rules of ``table``; times must lie in ``[min_ts, max_ts]`` (default
        2000-01-01 .. now + 1 day; naive datetimes are UTC)."""
        if table not in RAW:
            raise ValueError(f"unknown table {table!r}; expected one of {sorted(RAW)}")
        schema = RAW[table]
        non_nullable = [f.name for f in schema.fields if not f.nullable]
        required = tuple(dict.fromkeys([*RAW_KEYS[table], *non_nullable]))
        # Ids are never negative (the generator numbers users and items from 0).
        ids = [
            f.name
            for f in schema.fields
            if f.name.endswith("_id") and isinstance(f.dataType, T.IntegralType)
        ]
        now = dt.datetime.now(dt.UTC)
        return cls(
            table=table,
            schema=schema,
            required=required,
            enums=ENUMS.get(table, {}),
            non_negative=tuple(dict.fromkeys([*ids, *NON_NEGATIVE.get(table, ())])),
            distinct=DISTINCT.get(table, ()),
            min_ts=_utc(min_ts or DEFAULT_MIN_TS),
            max_ts=_utc(max_ts or now + dt.timedelta(days=1)),
            ranges=RANGES.get(table, {}),
        )


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _shown(value: Column) -> Column:
    return F.substring(value, 1, VALUE_SHOWN)


def _type_name(dtype: T.DataType) -> str:
    name = dtype.simpleString()
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def validate(parsed: DataFrame, rules: Rules) -> DataFrame:
    """Typed table columns plus ``_reason`` (null = accepted) for every record.

    ``parsed`` holds each table column either already typed or as a string, and the columns
    ``_raw``, ``_source_file``, ``_row_number``, ``_blank`` and ``_parse_error``.
    """
    given = {f.name: f.dataType for f in parsed.schema.fields}
    typed: dict[str, Column] = {}
    checks: list[Column] = []
    for target in rules.schema.fields:
        typed[target.name], column_checks = _column_checks(target, given[target.name], rules)
        checks.extend(column_checks)
    for left, right in rules.distinct:
        checks.append(F.when(typed[left] == typed[right], F.lit(f"{left} == {right}")))

    field_reasons = F.concat_ws("; ", *checks)
    reason = (
        F.when(F.col(BLANK), F.lit(None))
        .when(F.col(PARSE_ERROR).isNotNull(), F.col(PARSE_ERROR))
        .otherwise(F.nullif(field_reasons, F.lit("")))
    )
    return parsed.select(
        *[typed[name].alias(name) for name in rules.schema.names],
        RAW_TEXT,
        SOURCE,
        ROW,
        BLANK,
        reason.alias(REASON),
    )


def _column_checks(
    target: T.StructField, given: T.DataType, rules: Rules
) -> tuple[Column, list[Column]]:
    """One table column as its type, and its checks in reason order (each null where the value
    passes): of the type, finite, key not null, time within bounds, non-negative, within its
    range, allowed."""
    name, dtype = target.name, target.dataType
    raw = F.col(f"`{name}`")
    checks: list[Column] = []
    if given == dtype:
        value = raw
    else:
        value = raw.try_cast(dtype)
        text = raw.cast("string")
        checks.append(
            F.when(
                text.isNotNull() & value.isNull(),
                F.concat(
                    F.lit(f"column {name}: '"),
                    _shown(text),
                    F.lit(f"' is not {_type_name(dtype)}"),
                ),
            )
        )
    if isinstance(dtype, T.DoubleType):
        checks.append(
            F.when(
                F.isnan(value) | value.isin(float("inf"), float("-inf")),
                F.concat(
                    F.lit(f"column {name}: "),
                    value.cast("string"),
                    F.lit(" is not a finite number"),
                ),
            )
        )
    if name in rules.required:
        checks.append(F.when(raw.isNull(), F.lit(f"null key column {name}")))
    if isinstance(dtype, T.TimestampType):
        low, high = rules.min_ts, rules.max_ts
        checks.append(
            F.when(
                (value < F.lit(low)) | (value > F.lit(high)),
                F.concat(
                    F.lit(f"column {name}: '"),
                    F.date_format(value, "yyyy-MM-dd HH:mm:ss"),
                    F.lit(f"' outside [{low:%Y-%m-%d %H:%M:%S}, {high:%Y-%m-%d %H:%M:%S}]"),
                ),
            )
        )
    if name in rules.non_negative:
        checks.append(F.when(value < 0, F.lit(f"{name} < 0")))
    if name in rules.ranges:
        low, high = rules.ranges[name]
        checks.append(
            F.when(
                (value < low) | (value > high),
                F.concat(
                    F.lit(f"column {name}: "),
                    value.cast("string"),
                    F.lit(f" outside [{low:g}, {high:g}]"),
                ),
            )
        )
    if name in rules.enums:
        allowed = rules.enums[name]
        checks.append(
            F.when(
                ~value.isin(*allowed),
                F.concat(F.lit(f"{name} '"), _shown(value), F.lit(f"' not in {_allowed(allowed)}")),
            )
        )
    return value, checks


def _allowed(values: tuple[str, ...]) -> str:
    """The allowed values as a reason names them: all of a short list, else the count and the
    first few (a reason repeating 70 button names would drown the bad value)."""
    if len(values) <= ENUM_SHOWN:
        return f"({', '.join(values)})"
    return f"the {len(values)} known values ({', '.join(values[:3])}, ...)"
