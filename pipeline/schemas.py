"""Every raw table's schema, in one place (each system's shard schemas live in ``contracts/``).

Raw tables follow the papers' logs: Taocode share records, purchases, browses (DIPN's browse
view), touches (DIPN's touch view), items with price index, users. ``RAW_PARTITIONS`` says which
column each raw table is partitioned by in the lake. Stored raw rows also carry the ``batch_id``
of the ingest run (or generated world) that wrote them; ``LEDGER`` is the table that says which
batches are whole.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema


class SchemaMismatchError(ValueError):
    """Data does not have the schema its table expects; the message names the column."""


def spark_schema(contract: pa.Schema) -> T.StructType:
    """A contract's Arrow schema as the Spark schema writers enforce (nullability kept)."""
    return from_arrow_schema(contract)


SHARES = T.StructType(
    [
        T.StructField("sender_id", T.LongType(), False),
        T.StructField("receiver_id", T.LongType(), False),
        T.StructField("item_id", T.LongType(), False),
        T.StructField("ts", T.TimestampType(), False),
    ]
)

PURCHASES = T.StructType(
    [
        T.StructField("user_id", T.LongType(), False),
        T.StructField("item_id", T.LongType(), False),
        T.StructField("ts", T.TimestampType(), False),
        T.StructField("amount", T.DoubleType(), False),
    ]
)

BROWSE_ACTIONS = ("view", "click", "favorite", "cart", "search")
BROWSE_PAGES = ("home", "search", "item", "shop", "cart", "share")

BROWSES = T.StructType(
    [
        T.StructField("user_id", T.LongType(), False),
        T.StructField("item_id", T.LongType(), False),
        T.StructField("ts", T.TimestampType(), False),
        T.StructField("action", T.StringType(), False),
        T.StructField("page", T.StringType(), True),
        T.StructField("stay_s", T.DoubleType(), True),
    ]
)

#: DIPN's swipe-view actions (its Table 2a); a touch row is one of them.
TOUCH_EVENTS = ("open_page", "leave_page", "swipe", "tap")

#: The app's pages a touch happens on (fewer than ``contracts.dipn.VOCAB["swipe.page"]``).
TOUCH_PAGES = (
    "Page_Home", "Page_Search", "Page_SearchResult", "Page_Category", "Page_Detail",
    "Page_DetailImages", "Page_Comments", "Page_QA", "Page_SKU", "Page_Cart", "Page_Coupon",
    "Page_Shop", "Page_ShopSearch", "Page_Feed", "Page_Live", "Page_Video", "Page_Message",
    "Page_Chat", "Page_My", "Page_Favorites", "Page_Footprints", "Page_OrderList",
    "Page_Logistics", "Page_Refund", "Page_Recommend", "Page_Activity", "Page_Rewards",
    "Page_Settings", "Page_Scan", "Page_Share", "Page_Taocode", "Page_Ranking", "Page_Deals",
    "Page_FlashSale", "Page_Wallet", "Page_Address", "Page_Membership", "Page_Help",
    "Page_Notification", "Page_Web",
)

#: The buttons a tap may land on (fewer than ``contracts.dipn.VOCAB["tap.button"]``); a tap
#: on no button has a null ``button``.
TOUCH_BUTTONS = (
    "back", "close", "more", "home", "search", "search_submit", "scan", "message", "cart",
    "my", "share", "favorite", "unfavorite", "follow_shop", "enter_shop", "comments",
    "comment_images", "qa", "ask", "images", "video_play", "sku", "sku_color", "sku_size",
    "quantity_plus", "quantity_minus", "add_to_cart", "buy_now", "coupon", "coupon_claim",
    "price_compare", "shipping", "service", "chat_seller", "recommend_item", "filter", "sort",
    "sort_price", "sort_sales", "category", "banner", "feed_item", "live_enter", "live_like",
    "video_like", "tab_home", "tab_feed", "tab_message", "tab_cart", "tab_my", "settings",
    "order", "logistics", "refund", "checkout", "select_all", "remove_item", "edit", "address",
    "rewards", "sign_in", "deals", "flash_sale", "ranking", "notification", "help",
    "copy_taocode", "open_taocode", "web_link", "play", "pause", "confirm", "cancel",
)

#: A touch: ``x, y`` is a tap's position or a swipe's start, ``x_end, y_end`` a swipe's end,
#: in points of the ``contracts.dipn.SCREEN_W x SCREEN_H`` screen (x right, y down);
#: ``duration_ms`` a swipe's or a tap's duration. Times keep their milliseconds.
TOUCHES = T.StructType(
    [
        T.StructField("user_id", T.LongType(), False),
        T.StructField("item_id", T.LongType(), False),
        T.StructField("ts", T.TimestampType(), False),
        T.StructField("session_id", T.LongType(), False),
        T.StructField("event", T.StringType(), False),
        T.StructField("page", T.StringType(), True),
        T.StructField("x", T.DoubleType(), True),
        T.StructField("y", T.DoubleType(), True),
        T.StructField("x_end", T.DoubleType(), True),
        T.StructField("y_end", T.DoubleType(), True),
        T.StructField("duration_ms", T.DoubleType(), True),
        T.StructField("button", T.StringType(), True),
    ]
)

ITEMS = T.StructType(
    [
        T.StructField("item_id", T.LongType(), False),
        T.StructField("top_category", T.IntegerType(), False),
        T.StructField("leaf_category", T.IntegerType(), False),
        T.StructField("price", T.DoubleType(), False),
        T.StructField("price_index", T.DoubleType(), False),
    ]
)

USERS = T.StructType(
    [
        T.StructField("user_id", T.LongType(), False),
        T.StructField("age_band", T.IntegerType(), True),
        T.StructField("city_level", T.IntegerType(), True),
        T.StructField("consumption_tier", T.IntegerType(), True),
        T.StructField("registered_ts", T.TimestampType(), True),
    ]
)

RAW = {
    "shares": SHARES,
    "purchases": PURCHASES,
    "browses": BROWSES,
    "touches": TOUCHES,
    "items": ITEMS,
    "users": USERS,
}

# Columns that must be non-null for a row to be accepted (keys and times).
RAW_KEYS = {
    "shares": ("sender_id", "receiver_id", "item_id", "ts"),
    "purchases": ("user_id", "item_id", "ts", "amount"),
    "browses": ("user_id", "item_id", "ts", "action"),
    "touches": ("user_id", "item_id", "ts", "session_id", "event"),
    "items": ("item_id", "top_category", "leaf_category", "price", "price_index"),
    "users": ("user_id",),
}

# Time-bucketed tables are partitioned by the Monday of the record's week.
RAW_PARTITIONS = {
    "shares": ["week_start"],
    "purchases": ["week_start"],
    "browses": ["week_start"],
    "touches": ["week_start"],
}

QUARANTINE = T.StructType(
    [
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("source_file", T.StringType(), True),
        T.StructField("row_number", T.LongType(), True),
        T.StructField("raw", T.StringType(), True),
        T.StructField("reason", T.StringType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
    ]
)

TRUTH = T.StructType(
    [
        T.StructField("effect", T.StringType(), False),
        T.StructField("enabled", T.BooleanType(), False),
        T.StructField("parameter", T.StringType(), False),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("description", T.StringType(), True),
    ]
)


#: The column of every stored raw row naming the batch that wrote it.
BATCH_ID = "batch_id"

#: ``ledger/ingest``: one row per batch committed whole to ``raw/<table>`` and
#: ``quarantine/<table>`` (kind ``ingest`` or ``world``), and one per batch removed (``undo``).
#: It is written after the batch's data, so a batch without a row here is incomplete.
LEDGER = T.StructType(
    [
        T.StructField("table", T.StringType(), False),
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("input", T.StringType(), True),
        T.StructField("fingerprint", T.StringType(), True),
        T.StructField("files", T.LongType(), True),
        T.StructField("read", T.LongType(), True),
        T.StructField("accepted", T.LongType(), True),
        T.StructField("quarantined", T.LongType(), True),
        T.StructField("raw_version", T.LongType(), True),
        T.StructField("quarantine_version", T.LongType(), True),
        T.StructField("committed_at", T.TimestampType(), False),
    ]
)


def stored_schema(table: str) -> T.StructType:
    """The stored schema of raw table ``table``: its columns, ``batch_id``, its partitions."""
    fields = [*RAW[table].fields, T.StructField(BATCH_ID, T.StringType(), False)]
    return with_partitions(table, T.StructType(fields))


def with_partitions(table: str, schema: T.StructType) -> T.StructType:
    """``schema`` followed by the table's partition columns."""
    fields = list(schema.fields)
    for col in RAW_PARTITIONS.get(table, []):
        fields.append(T.StructField(col, T.DateType(), False))
    return T.StructType(fields)


def nullable(dtype: T.DataType) -> T.DataType:
    """``dtype`` with every nested field, element and value marked nullable."""
    if isinstance(dtype, T.StructType):
        return T.StructType([T.StructField(f.name, nullable(f.dataType), True) for f in dtype])
    if isinstance(dtype, T.ArrayType):
        return T.ArrayType(nullable(dtype.elementType), True)
    if isinstance(dtype, T.MapType):
        return T.MapType(nullable(dtype.keyType), nullable(dtype.valueType), True)
    return dtype


def check_schema(actual: T.StructType, expected: T.StructType, where: str) -> None:
    """Raise SchemaMismatchError naming the first column whose name or type differs.

    Nullability is not compared, also inside arrays and structs: Parquet files written by Spark
    mark every column nullable.
    """
    got = {f.name: nullable(f.dataType) for f in actual.fields}
    want = {f.name: nullable(f.dataType) for f in expected.fields}
    for name, dtype in want.items():
        if name not in got:
            raise SchemaMismatchError(
                f"{where}: column {name!r} is missing (expected {dtype.simpleString()})"
            )
        if got[name] != dtype:
            raise SchemaMismatchError(
                f"{where}: column {name!r} has type {got[name].simpleString()}, "
                f"expected {dtype.simpleString()}"
            )
    extra = [name for name in got if name not in want]
    if extra:
        raise SchemaMismatchError(f"{where}: unexpected column {extra[0]!r}")
