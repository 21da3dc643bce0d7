"""The whole world: entities, cascades (in two passes when E2, E3 or E9 is on, one more with
E10), purchases and the raw tables, generated on the executors and committed to the lake.

Intermediates (browses, seeds, each hop, the first pass's network) are written to a scratch
folder and read back, so nothing is computed twice; ``generate_to_lake`` removes it.
"""

from __future__ import annotations

from dataclasses import asdict

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts.runs import run_digest
from pipeline import batches, schemas
from pipeline.faults import failpoint
from pipeline.world.cascades import cascades, materialize, two_pass
from pipeline.world.clock import timestamp, week_start
from pipeline.world.config import WEEK_S, WorldConfig
from pipeline.world.draws import normal, uniform
from pipeline.world.entities import (
    browse_outcome,
    browses,
    item_attributes,
    items,
    seeds,
    users,
    with_item,
)
from pipeline.world.network import (
    network_neighbours,
    prior_degrees,
    tie_history,
    with_prior_degrees,
    with_tie_score,
)
from pipeline.world.recency import contact_history
from pipeline.world.rising import surge
from pipeline.world.touches import touches
from pipeline.world.truth import truth_rows

RAW_TABLES = ("users", "items", "shares", "purchases", "browses", "touches")


def to_raw_shares(records: DataFrame, cfg: WorldConfig) -> DataFrame:
    return records.select(
        "sender_id", "receiver_id", "item_id", timestamp(cfg, F.col("t")).alias("ts")
    ).withColumn("week_start", week_start(F.col("ts")))


def weekly_price(cfg: WorldConfig, iid: Column, t: Column) -> Column:
    """The price an item sells at in the week of ``t``: its list price times a log-normal
    factor per (item, week) with sd ``weekly_price_sd`` (the conversion model reads the list
    price; purchases' amounts carry this one)."""
    week = (t / WEEK_S).cast("long")
    factor = F.exp(normal(cfg.seed, "weekly-price", iid, week) * cfg.weekly_price_sd)
    return F.round(item_attributes(cfg, iid)["price"] * factor, 2)


def to_raw_purchases(purchases: DataFrame, cfg: WorldConfig) -> DataFrame:
    """(user_id, item_id, t) -> raw purchases; amount = the week's price x quantity (mostly
    1)."""
    s = cfg.seed
    key = F.xxhash64(F.col("user_id"), F.col("item_id"), F.col("t"))
    qty = F.when(uniform(s, "qty", key) < 0.85, 1).otherwise(2)
    return (
        purchases.where((F.col("t") >= 0) & (F.col("t") < cfg.weeks * 7 * 86400))
        .withColumn("price", weekly_price(cfg, F.col("item_id"), F.col("t")))
        .select(
            "user_id",
            "item_id",
            timestamp(cfg, F.col("t")).alias("ts"),
            F.round(F.col("price") * qty, 2).alias("amount"),
        )
        .withColumn("week_start", week_start(F.col("ts")))
    )


def _network(spark: SparkSession, cfg: WorldConfig, sharers: DataFrame, scratch, progress):
    """(degrees, neighbours, ties, contacts) that E2, E3, E9 and E10 read (None for an effect
    that is off). E10's contacts come from the cascades generated without any of them; E2's,
    E3's and E9's network from those generated with E10 alone, reading those contacts (see
    ``cascades`` and ``recency``). All from the same draws."""
    degrees = neighbours = ties = contacts = None
    if cfg.on("E10"):
        first = cascades(spark, cfg, sharers, None, None, f"{scratch}/contacts", progress,
                         note=" (contacts without E2, E3, E9, E10)")
        contacts = materialize(contact_history(first), f"{scratch}/contact_history", spark)
    if not two_pass(cfg):
        return degrees, neighbours, ties, contacts
    note = " (network with E10, without E2, E3, E9)" if contacts is not None else (
        " (network without E2, E3, E9)")
    network = cascades(spark, cfg, sharers, None, None, f"{scratch}/network", progress,
                       contacts=contacts, note=note)
    if cfg.on("E2"):
        degrees = materialize(prior_degrees(network), f"{scratch}/degrees", spark)
    if cfg.on("E3"):
        neighbours = materialize(network_neighbours(network), f"{scratch}/neighbours", spark)
    if cfg.on("E9"):
        ties = materialize(tie_history(network), f"{scratch}/ties", spark)
    return degrees, neighbours, ties, contacts


def _purchases(
    spark: SparkSession,
    cfg: WorldConfig,
    item_df: DataFrame,
    browse_df: DataFrame,
    seed_df: DataFrame,
    records: DataFrame,
) -> DataFrame:
    """(user_id, item_id, t): purchases after browses, by seeds and through share records, and
    and the rising stars' outside demand surges (with E5 on or off: E5 is what announces them)."""
    purchases = (
        browse_df.where(F.col("buy_t").isNotNull())
        .select("user_id", "item_id", F.col("buy_t").alias("t"))
        .unionByName(
            seed_df.where(F.col("buy_t").isNotNull()).select(
                F.col("sender_id").alias("user_id"), "item_id", F.col("buy_t").alias("t")
            )
        )
        .unionByName(
            records.where(F.col("bought")).select(
                F.col("receiver_id").alias("user_id"), "item_id", F.col("buy_t").alias("t")
            )
        )
    )
    purchases = purchases.unionByName(surge(spark, cfg, item_df, purchases))
    return purchases


def _all_browses(cfg: WorldConfig, browse_df: DataFrame, seed_df: DataFrame) -> DataFrame:
    """The organic browses and each seed's browse before its share (action, page and stay
    from the browse model; the seed's purchase is the one ``seeds`` decided)."""
    seed_browses = seed_df.select(
        F.col("sender_id").alias("user_id"),
        "item_id",
        F.col("browse_t").alias("t"),
        F.col("rid").alias("browse_id"),
    ).withColumn("buy_t", F.lit(None).cast("long"))
    seed_browses = browse_outcome(with_item(seed_browses, cfg), cfg).withColumn(
        "intent", F.lit(0)
    )
    return browse_df.unionByName(seed_browses.select(*browse_df.columns))


def _raw_tables(
    cfg: WorldConfig,
    user_df: DataFrame,
    item_df: DataFrame,
    records: DataFrame,
    purchases: DataFrame,
    browse_df: DataFrame,
    all_browses: DataFrame,
) -> dict[str, DataFrame]:
    """The raw tables, cast to their schemas (``schemas.with_partitions``); nothing before the
    world's start or after its end (a seed's browse comes before its share, and a burst of
    E5 may be set in weeks past a short world's end)."""
    inside = (F.col("t") >= 0) & (F.col("t") < cfg.weeks * WEEK_S)
    raw_browses = all_browses.where(inside).select(
        "user_id",
        "item_id",
        timestamp(cfg, F.col("t")).alias("ts"),
        "action",
        "page",
        F.col("stay_s").cast("double").alias("stay_s"),
    )
    raw_touches = touches(browse_df, cfg)  # inside the world, times in milliseconds
    tables = {
        "users": user_df.select(
            "user_id",
            "age_band",
            "city_level",
            F.col("tier").alias("consumption_tier"),
            "registered_ts",
        ),
        "items": item_df.select("item_id", "top_category", "leaf_category", "price", "price_index"),
        "shares": to_raw_shares(records, cfg),
        "purchases": to_raw_purchases(purchases, cfg),
        "browses": raw_browses.withColumn("week_start", week_start(F.col("ts"))),
        "touches": raw_touches.withColumn("week_start", week_start(F.col("ts"))),
    }
    out = {}
    for name, df in tables.items():
        want = schemas.with_partitions(name, schemas.RAW[name])
        out[name] = df.select(*[F.col(f.name).cast(f.dataType) for f in want.fields])
    return out


def generate(
    spark: SparkSession, cfg: WorldConfig, scratch, progress=print
) -> dict[str, DataFrame]:
    """Generate the world; returns the raw tables (schema ``schemas.with_partitions``) and
    ``truth``. Intermediates are materialized under ``scratch`` (delete it afterwards).

    Also returned, never committed: ``_records``, every share record with its share-model
    inputs, and ``_browses``, the browses with theirs."""
    scratch = str(scratch).rstrip("/")
    user_df = users(spark, cfg)
    item_df = items(spark, cfg)
    progress(f"world: {cfg.n_users} users, {cfg.n_items} items, effects {sorted(cfg.effects)}")

    browse_df = materialize(browses(spark, cfg), f"{scratch}/browses", spark)
    seed_df = materialize(seeds(cfg, user_df), f"{scratch}/seeds", spark)
    progress("world: browses and cascade seeds done")

    sharers = seed_df.drop("browse_t", "buy_t")
    degrees, neighbours, ties, contacts = _network(spark, cfg, sharers, scratch, progress)
    records = cascades(spark, cfg, sharers, degrees, neighbours, scratch, progress, ties,
                       contacts)
    inputs = records
    if degrees is None:
        # Not read by the share model; in ``_records`` as the observable covariate.
        inputs = with_prior_degrees(inputs.drop("s_deg", "r_deg"), prior_degrees(records))
    if ties is None:
        inputs = with_tie_score(inputs.drop("tie"), tie_history(records))

    purchases = _purchases(spark, cfg, item_df, browse_df, seed_df, records)
    all_browses = _all_browses(cfg, browse_df, seed_df)
    out = _raw_tables(cfg, user_df, item_df, records, purchases, browse_df, all_browses)
    out["truth"] = spark.createDataFrame(truth_rows(cfg), schemas.TRUTH)
    out["_records"] = inputs
    out["_browses"] = all_browses
    return out


def config_id(cfg: WorldConfig) -> str:
    """A short stable id of a configuration, the default run id of ``generate_world``."""
    return run_digest(asdict(cfg))


def generate_to_lake(
    spark: SparkSession, lake, cfg: WorldConfig, run_id: str | None = None, progress=print
) -> dict[str, object]:
    """Generate the world and commit ``raw/*`` and ``truth/world`` (overwriting a previous
    world). Re-running the same run id commits nothing new."""
    run_id = run_id or f"world-{config_id(cfg)}"
    app_id = f"generate_world:{run_id}"
    if lake.committed(*batches.LEDGER_TABLE, f"ledger:{app_id}"):
        progress(f"world {run_id} is already committed; nothing to do")
        return {"run_id": run_id, "skipped": True}
    scratch = lake.location("_scratch", run_id)
    try:
        tables = generate(spark, cfg, scratch, progress)
        failpoint("generate_world.scratch-written", spark)
        results, ledger = {}, []
        for name in RAW_TABLES:
            # The world's rows are one batch (its run id); the world replaces the tables and
            # their schema, so a lake written before batch ids is generated over too.
            stored = schemas.stored_schema(name)
            rows = tables[name].withColumn(schemas.BATCH_ID, F.lit(run_id))
            res = lake.write(
                rows.select(*stored.names),
                "raw",
                name,
                mode="overwrite",
                overwrite_schema=True,
                partition_by=schemas.RAW_PARTITIONS.get(name),
                app_id=app_id,
                max_records_per_file=5_000_000,
                expected_schema=stored,
            )
            progress(f"world: {res}")
            failpoint(f"generate_world.raw-{name}-committed", spark)
            done = res if not res.skipped else lake.commit_result("raw", name, app_id)
            results[name] = done.rows
            ledger.append(batches.entry(name, run_id, "world", accepted=done.rows,
                                        read=done.rows, quarantined=0, raw_version=done.version))
        res = lake.write(
            tables["truth"].coalesce(1), "truth", "world", mode="overwrite", app_id=app_id
        )
        results["truth"] = res.rows
        failpoint("generate_world.truth-committed", spark)
        # Last: the ledger says the world's batch is whole.
        batches.record(spark, lake, app_id, ledger)
    finally:
        lake.remove(scratch)
    return {"run_id": run_id, "skipped": False, "rows": results}
