"""E8's touch view: dense touch sessions around browses, carrying (or not) the purchase intent.

**Sessions.** A ``touch_session_rate`` share of the organic browses get a session, the app use
that leads to the browse (DIPN's swipe and tap views, its Sec. 3.1). A session is ``K`` page
visits (``2 + floor(Exp(2))``, at most 12), one of them (uniformly placed) on ``Page_Detail``,
the browsed item's page; each visit is ``open_page``, its swipes and taps, ``leave_page``. The
browse is logged as the user leaves the item's page: the detail visit's ``leave_page`` is at
the browse time ``t`` to the millisecond, and the visits after it continue the session, so a
cut later in the session sees the browse. (The browse's own ``stay_s`` is drawn apart from
the detail visit's length, so that a view carries E8 only where ``e8_views`` puts it.) A
session holds about ``swipes_per_session`` swipes and ``taps_per_session`` taps (log-normal
counts; the defaults are the paper's Table 1 ratios to browses) at a session's own pace of
about one event a second, so it spans about a minute.
Events fall uniformly over the session, each on the visit its time falls in; a visit lasts at
least 300 ms, otherwise its share of the session by an ``Exp(1)`` weight. Times keep their
milliseconds: events of one session rarely share one.

* A swipe is vertical (scrolling, 80 % of them upwards) or, 15 % of the time, horizontal; its
  length and duration are log-normal (about 220 points and 150 ms); start and end lie on the
  ``contracts.dipn.SCREEN_W x SCREEN_H`` screen.
* A tap lands on a button 60 % of the time, near the button's spot (``BUTTON_SPOTS``), else
  anywhere on the page (``button`` null).

**Intent (E8).** A session has four latent styles, each ``N(0, 1)`` across sessions plus
``e8_touch * touch_intent``:

* length: more swipes and taps (counts scale with ``exp(0.4 * style)``);
* pages: more visits to ``PRODUCT_PAGES`` (probability ``sigmoid(-1 + 0.8 * style)``) and
  longer stays there (weight ``exp(0.5 * style)``);
* buttons: on product pages, more taps on ``PURCHASE_BUTTONS`` (``sigmoid(-1.2 + 0.8 *
  style)`` of button taps, 3 % elsewhere);
* swipes: slower and shorter, reading (duration ``exp(0.25 * style)``, length
  ``exp(-0.25 * style)``).

``touch_intent`` (``entities.browse_outcome``) is 2 when the browse's purchase follows within 1
hour, 1 within 1 day, else 0, where E8 is on and "touch" is in ``e8_views``; otherwise it is 0
and sessions have the same distributions whatever follows. The styles belong to the session,
not the event, so a long session does not make its intent certain: a sequence model can learn
it (page, button, tap position, swipe length and duration, session length), not perfectly.

Every draw is a hash of (seed, salt, browse id, event or visit index) (``draws``): the same
seed gives the same sessions whatever the partitioning.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from contracts.dipn import SCREEN_H, SCREEN_W
from pipeline import schemas
from pipeline.world.clock import timestamp
from pipeline.world.config import WEEK_S, WorldConfig
from pipeline.world.draws import exponential, normal, sigmoid, uniform

#: Pages about the item itself, where a buyer dwells.
PRODUCT_PAGES = (
    "Page_Detail", "Page_DetailImages", "Page_Comments", "Page_QA", "Page_SKU", "Page_Cart",
    "Page_Coupon",
)
#: The other pages, most visited first.
OTHER_PAGES = tuple(p for p in schemas.TOUCH_PAGES if p not in PRODUCT_PAGES)
#: Buttons a buyer taps (on product pages), most tapped first.
PURCHASE_BUTTONS = (
    "sku", "add_to_cart", "comments", "buy_now", "sku_color", "sku_size", "comment_images",
    "quantity_plus", "qa", "coupon_claim", "checkout",
)
OTHER_BUTTONS = tuple(b for b in schemas.TOUCH_BUTTONS if b not in PURCHASE_BUTTONS)
#: Where the common buttons sit on the screen (points); the others are spread over the page.
_FIXED_SPOTS = {
    "back": (24.0, 44.0), "close": (390.0, 44.0), "more": (390.0, 44.0),
    "search": (207.0, 44.0), "share": (350.0, 44.0), "cart": (310.0, 44.0),
    "add_to_cart": (260.0, 710.0), "buy_now": (355.0, 710.0), "favorite": (110.0, 710.0),
    "enter_shop": (40.0, 710.0), "service": (75.0, 710.0), "checkout": (360.0, 706.0),
    "tab_home": (41.0, 712.0), "tab_feed": (124.0, 712.0), "tab_message": (207.0, 712.0),
    "tab_cart": (290.0, 712.0), "tab_my": (373.0, 712.0), "sku": (207.0, 520.0),
    "comments": (207.0, 600.0),
}
BUTTON_SPOTS = {
    name: _FIXED_SPOTS.get(name, (40.0 + (i * 97) % 334, 100.0 + (i * 151) % 540))
    for i, name in enumerate(schemas.TOUCH_BUTTONS)
}

MAX_VISITS = 12
MIN_VISIT_MS = 300
TAP_ON_BUTTON = 0.6
HORIZONTAL_SWIPES = 0.15
UPWARD_SWIPES = 0.8


def touches(browse_df: DataFrame, cfg: WorldConfig) -> DataFrame:
    """The touch sessions of ``browse_df``'s browses (``browse_id``, ``user_id``, ``item_id``,
    ``t``, ``touch_intent``): the columns of ``schemas.TOUCHES``, ``ts`` with milliseconds,
    ``session_id`` the browse id; events before the world's start or after its end are left
    out."""
    rows = _rows(_visit_rows(_sessions(browse_df, cfg), cfg), cfg).withColumns(_draws(cfg))
    swipe, tap = _swipe(), _tap()
    is_swipe, is_tap = F.col("event") == "swipe", F.col("event") == "tap"
    world_ms = cfg.weeks * WEEK_S * 1000
    return rows.where((F.col("t_ms") >= 0) & (F.col("t_ms") < world_ms)).select(
        "user_id",
        "item_id",
        F.timestamp_millis(_epoch_ms(cfg) + F.col("t_ms")).alias("ts"),
        F.col("browse_id").alias("session_id"),
        "event",
        "page",
        F.when(is_swipe, swipe["x"]).when(is_tap, tap["x"]).alias("x"),
        F.when(is_swipe, swipe["y"]).when(is_tap, tap["y"]).alias("y"),
        F.when(is_swipe, swipe["x_end"]).alias("x_end"),
        F.when(is_swipe, swipe["y_end"]).alias("y_end"),
        F.col("duration").alias("duration_ms"),
        F.when(is_tap, tap["button"]).alias("button"),
    )


def _epoch_ms(cfg: WorldConfig) -> Column:
    """The world's start in epoch milliseconds."""
    return timestamp(cfg, F.lit(0)).cast("long") * 1000


def _sessions(browse_df: DataFrame, cfg: WorldConfig) -> DataFrame:
    """One row per session: its styles (``z_*``), counts, length and its detail visit
    (``k_detail``)."""
    s = cfg.seed
    bid = F.col("browse_id")
    shift = F.col("touch_intent").cast("double") * cfg.e8_touch

    def style(name: str) -> Column:
        return normal(s, f"touch-style-{name}", bid) + shift

    def count(name: str, mean: float) -> Column:
        # log-normal, sd 0.5 in log, mean ``mean`` at style 0
        spread = F.col("z_len") * 0.4 + normal(s, f"touch-n-{name}", bid) * 0.3
        return F.round(F.exp(spread - 0.125) * mean).cast("int")

    n_visits = F.least(
        F.lit(MAX_VISITS), F.lit(2) + F.floor(exponential(s, "touch-visits", 2.0, bid)).cast("int")
    )
    pace_ms = F.exp(normal(s, "touch-pace", bid) * 0.3 - 0.045) * 1000.0
    length_ms = F.greatest(
        (F.col("n_swipes") + F.col("n_taps") + F.col("n_visits")) * pace_ms,
        F.col("n_visits") * MIN_VISIT_MS * 4.0,
    ).cast("long")
    return (
        browse_df.where(uniform(s, "touch-session", bid) < cfg.touch_session_rate)
        .select("browse_id", "user_id", "item_id", "t", "touch_intent")
        .withColumns({k: style(k) for k in ("z_len", "z_page", "z_button", "z_swipe")})
        .withColumn("n_swipes", count("swipes", cfg.swipes_per_session))
        .withColumn("n_taps", count("taps", cfg.taps_per_session))
        .withColumn("n_visits", n_visits)
        .withColumn("length_ms", length_ms)
        .withColumn("k_detail", F.floor(uniform(s, "touch-detail", bid) * F.col("n_visits"))
                    .cast("int"))
    )


def _visit_rows(sessions: DataFrame, cfg: WorldConfig) -> DataFrame:
    """One row per visit ``k``: its ``page`` (visit ``k_detail``'s ``Page_Detail``), its start
    and end in ms after the world's start (``open_ms``, ``close_ms``) and the session's swipes
    ``[sw_lo, sw_hi)`` and taps ``[tap_lo, tap_hi)`` that fall in it. A visit lasts
    ``MIN_VISIT_MS`` plus its weight's share of the rest of the session and holds that share of
    its events; weights ``Exp(1)``, times ``exp(0.5 * z_page)`` on product pages. The session's
    start is set so that the detail visit closes 1 ms after the browse time ``t``: its
    ``leave_page`` falls on ``t``."""
    s = cfg.seed
    bid, k = F.col("browse_id"), F.col("k")
    detail = k == F.col("k_detail")
    p_product = sigmoid(F.col("z_page") * 0.8 - 1.0)
    is_product = detail | (uniform(s, "touch-product", bid, k) < p_product)
    u_page = uniform(s, "touch-page", bid, k)
    product = F.array(*[F.lit(p) for p in PRODUCT_PAGES])
    other = F.array(*[F.lit(p) for p in OTHER_PAGES])
    page = (
        F.when(detail, F.lit("Page_Detail"))
        .when(is_product, F.element_at(product, (u_page * len(PRODUCT_PAGES)).cast("int") + 1))
        # other pages by popularity: index ~ u^2
        .otherwise(F.element_at(other, (F.pow(u_page, 2) * len(OTHER_PAGES)).cast("int") + 1))
    )
    dwell = F.when(is_product, F.exp(F.col("z_page") * 0.5)).otherwise(1.0)
    weight = exponential(s, "touch-dwell", 1.0, bid, k) * dwell
    in_order = Window.partitionBy("browse_id").orderBy("k")
    running = F.sum("w").over(in_order.rowsBetween(Window.unboundedPreceding, 0))
    total = F.sum("w").over(Window.partitionBy("browse_id"))
    spare = F.col("length_ms") - F.col("n_visits") * MIN_VISIT_MS

    def offset(visit: Column, share: Column) -> Column:
        return F.floor(visit * MIN_VISIT_MS + share * spare).cast("long")

    def at(visit: Column, share: str) -> Column:
        return F.col("start_ms") + offset(visit, F.col(share))

    detail_hi = F.max(F.when(detail, F.col("hi"))).over(Window.partitionBy("browse_id"))
    start_ms = F.col("t") * 1000 + 1 - offset(F.col("k_detail") + 1, detail_hi)

    def first(n: str, share: str) -> Column:
        return F.round(F.col(share) * F.col(n)).cast("int")

    return (
        sessions.withColumn("k", F.explode(F.sequence(F.lit(0), F.col("n_visits") - 1)))
        .withColumn("page", page)
        .withColumn("w", weight)
        .withColumn("hi", running / total)
        .withColumn("lo", F.coalesce(F.lag("hi").over(in_order), F.lit(0.0)))
        .withColumn("start_ms", start_ms)
        .select(
            "browse_id", "user_id", "item_id", "z_button", "z_swipe", "n_swipes", "n_taps",
            "k", "page",
            at(k, "lo").alias("open_ms"),
            at(k + 1, "hi").alias("close_ms"),
            first("n_swipes", "lo").alias("sw_lo"),
            first("n_swipes", "hi").alias("sw_hi"),
            first("n_taps", "lo").alias("tap_lo"),
            first("n_taps", "hi").alias("tap_hi"),
        )
    )


def _rows(visits: DataFrame, cfg: WorldConfig) -> DataFrame:
    """A visit's rows ``j``: its ``open_page`` (0), swipes, taps, ``leave_page`` (last). Adds
    ``event``, ``t_ms`` (after the world's start: opening at the visit's start, leaving 1 ms
    before its end, the rest uniform in between) and ``key``, the hash of (browse id, event
    index) that keys every draw of the event (swipes 0.., then taps, then the visits' opens and
    leaves)."""
    j = F.col("j")
    swipes = F.col("sw_hi") - F.col("sw_lo")
    taps = F.col("tap_hi") - F.col("tap_lo")
    last = swipes + taps + 1
    index = (
        F.when(j == 0, F.col("n_swipes") + F.col("n_taps") + 2 * F.col("k"))
        .when(j == last, F.col("n_swipes") + F.col("n_taps") + 2 * F.col("k") + 1)
        .when(j <= swipes, F.col("sw_lo") + j - 1)
        .otherwise(F.col("n_swipes") + F.col("tap_lo") + j - 1 - swipes)
    )
    event = (
        F.when(j == 0, "open_page")
        .when(j == last, "leave_page")
        .when(j <= swipes, "swipe")
        .otherwise("tap")
    )
    inside = F.col("close_ms") - F.col("open_ms") - 3
    t_ms = (
        F.when(j == 0, F.col("open_ms"))
        .when(j == last, F.col("close_ms") - 1)
        .otherwise(
            F.col("open_ms") + 1 + F.floor(uniform(cfg.seed, "touch-at", "key") * inside)
        )
    )
    return (
        visits.withColumn("j", F.explode(F.sequence(F.lit(0), last)))
        .withColumn("event", event)
        .withColumn("key", F.xxhash64(F.col("browse_id"), index))
        .withColumn("t_ms", t_ms.cast("long"))
    )


def _screen(value: Column, high: float) -> Column:
    return F.round(F.greatest(F.lit(0.0), F.least(F.lit(high), value)), 1)


def _draws(cfg: WorldConfig) -> dict[str, Column]:
    """A swipe's or a tap's random draws, each computed once (the geometry reads them several
    times): ``u_x``, ``u_y``, ``u_shape`` uniforms; a swipe's ``length`` (about 220 points
    times ``exp(-0.25 * z_swipe)``), ``wobble`` and ``duration`` (about 150 ms times
    ``exp(0.25 * z_swipe)``, a tap's about 90 ms); a tap's button ``spot`` (null: a tap on the
    page), a purchase button with probability ``sigmoid(-1.2 + 0.8 * z_button)`` on product
    pages, 3 % elsewhere, buttons of a group by popularity (index ~ u^2)."""
    s = cfg.seed
    swipe, tap = F.col("event") == "swipe", F.col("event") == "tap"

    def u(salt: str) -> Column:
        return uniform(s, f"touch-{salt}", "key")

    def pick(names: tuple[str, ...]) -> Column:
        index = (F.pow(u("which"), 2) * len(names)).cast("int") + 1
        return F.element_at(_spots(names), index)

    length = F.exp(F.col("z_swipe") * -0.25 + normal(s, "swipe-length", "key") * 0.35) * 220.0
    swipe_ms = F.exp(F.col("z_swipe") * 0.25 + normal(s, "swipe-duration", "key") * 0.4) * 140
    tap_ms = exponential(s, "tap-duration", 50.0, "key") + 40
    purchase = u("purchase") < F.when(
        F.col("page").isin(*PRODUCT_PAGES), sigmoid(F.col("z_button") * 0.8 - 1.2)
    ).otherwise(0.03)
    spot = F.when(purchase, pick(PURCHASE_BUTTONS)).otherwise(pick(OTHER_BUTTONS))
    return {
        "u_x": F.when(swipe | tap, u("x")),
        "u_y": F.when(swipe | tap, u("y")),
        "u_shape": F.when(swipe | tap, u("shape")),
        "length": F.when(swipe, F.least(F.lit(600.0), length)),
        "wobble": F.when(swipe | tap, normal(s, "touch-wobble", "key") * 8),
        "duration": F.round(
            F.when(swipe, F.least(F.lit(3000.0), swipe_ms)).when(
                tap, F.least(F.lit(2000.0), tap_ms)
            )
        ),
        "spot": F.when(tap & (u("button") < TAP_ON_BUTTON), spot),
    }


def _swipe() -> dict[str, Column]:
    """A swipe's start and end from its draws: horizontal ``HORIZONTAL_SWIPES`` of the time
    (left or right, 0.6 of the length), else vertical (upwards ``UPWARD_SWIPES`` of the time),
    the whole stroke on the screen, 10 points from its edges."""
    length, shape = F.col("length"), F.col("u_shape")
    u_x, u_y, wobble = F.col("u_x"), F.col("u_y"), F.col("wobble")
    horizontal = shape < HORIZONTAL_SWIPES
    left = shape < HORIZONTAL_SWIPES / 2
    up = shape < HORIZONTAL_SWIPES + (1 - HORIZONTAL_SWIPES) * UPWARD_SWIPES
    across = F.least(F.lit(330.0), length * 0.6)
    vx = u_x * (SCREEN_W - 80) + 40
    vy = F.when(up, length).otherwise(0.0) + 10 + u_y * (SCREEN_H - 20 - length)
    hx = F.when(left, across).otherwise(0.0) + 10 + u_x * (SCREEN_W - 20 - across)
    hy = u_y * 300 + 150
    return {
        "x": _screen(F.when(horizontal, hx).otherwise(vx), SCREEN_W),
        "y": _screen(F.when(horizontal, hy).otherwise(vy), SCREEN_H),
        "x_end": _screen(
            F.when(horizontal, F.when(left, hx - across).otherwise(hx + across)).otherwise(
                vx + wobble
            ),
            SCREEN_W,
        ),
        "y_end": _screen(
            F.when(horizontal, hy + wobble).otherwise(
                F.when(up, vy - length).otherwise(vy + length)
            ),
            SCREEN_H,
        ),
    }


def _spots(names: tuple[str, ...]) -> Column:
    return F.array(
        *[
            F.struct(
                F.lit(n).alias("name"),
                F.lit(BUTTON_SPOTS[n][0]).alias("x"),
                F.lit(BUTTON_SPOTS[n][1]).alias("y"),
            )
            for n in names
        ]
    )


def _tap() -> dict[str, Column]:
    """A tap's position from its draws: near its button's spot (``wobble`` and the ``u_shape``
    angle), or anywhere on the page."""
    spot, wobble = F.col("spot"), F.col("wobble")
    angle = F.col("u_shape") * 6.283185307179586
    on_button = spot.isNotNull()
    x = F.when(on_button, spot["x"] + wobble * F.cos(angle)).otherwise(
        F.col("u_x") * (SCREEN_W - 20) + 10
    )
    y = F.when(on_button, spot["y"] + wobble * F.sin(angle)).otherwise(
        F.col("u_y") * (SCREEN_H - 160) + 80
    )
    return {"x": _screen(x, SCREEN_W), "y": _screen(y, SCREEN_H), "button": spot["name"]}
