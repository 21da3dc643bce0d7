"""E8, touch sessions: the touch events just before a browse carry the intent of what follows.

With E8 on, a session followed by a purchase within 1 hour is long and rich in zoom /
long-press / cart events, one followed by a purchase within 1 day moderately so (a browse's
``intent``: 2 and 1, see ``entities.browse_outcome``). Off: sessions look the same whatever
follows. A ``touch_session_rate`` of the browses have a session.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pipeline import schemas
from pipeline.world.config import WorldConfig
from pipeline.world.draws import exponential, uniform


def touches(browse_df: DataFrame, cfg: WorldConfig) -> DataFrame:
    """Touch sessions just before browses; with E8 on they carry the purchase intent."""
    s = cfg.seed
    bid = F.col("browse_id")
    has_session = uniform(s, "touch-session", bid) < cfg.touch_session_rate
    n_events = F.lit(2) + (exponential(s, "touch-n", 3.0, bid) * (F.col("intent") + 1)).cast("int")
    key = F.xxhash64(F.col("browse_id"), F.col("e"))
    u_ev = uniform(s, "touch-ev", key)
    rich = F.col("intent") * 0.15
    event = (
        F.when(u_ev < F.lit(0.45) - rich, "scroll")
        .when(u_ev < F.lit(0.75) - rich * 1.5, "tap")
        .when(u_ev < F.lit(0.85) - rich, "swipe")
        .when(u_ev < 0.93 - rich * 0.2, "zoom")
        .otherwise("long_press")
    )
    pages = F.array(*[F.lit(p) for p in schemas.BROWSE_PAGES])
    page = F.when(uniform(s, "touch-cart", key) < F.col("intent") * 0.25, "cart").otherwise(
        F.element_at(
            pages, (uniform(s, "touch-page", key) * len(schemas.BROWSE_PAGES)).cast("int") + 1
        )
    )
    return (
        browse_df.where(has_session)
        .withColumn("e", F.explode(F.sequence(F.lit(1), n_events)))
        .withColumn(
            "t_touch",
            F.col("t") - (F.col("e") * (uniform(s, "touch-gap", key) * 20 + 5)).cast("long"),
        )
        .select(
            "user_id",
            "item_id",
            F.col("t_touch").alias("t"),
            F.col("browse_id").alias("session_id"),
            event.alias("event"),
            page.alias("page"),
        )
    )
