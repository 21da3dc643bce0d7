"""``truth/world``: the planted effects, whether each is on, and their true strengths, followed
by every generator setting, so that a lake records the world it holds."""

from __future__ import annotations

from dataclasses import asdict

from pipeline.stats.common import DEAR_PI, TIE_CAP, TIE_WEEKS
from pipeline.world.config import WorldConfig


def truth_rows(cfg: WorldConfig) -> list[tuple]:
    """(effect, enabled, parameter, value, description) for ``truth/world``."""
    on = cfg.on
    rows = [
        ("E1", on("E1"), "e1_lift", cfg.e1_lift, "logit lift of a share record over a browse"),
        ("E1", on("E1"), "e1_pi_slope", cfg.e1_pi_slope, "extra logit lift per unit of PI"),
        ("E2", on("E2"), "e2_gap", cfg.e2_gap,
         "logit per log1p prior-degree gap (s - r, in + out, earlier weeks), in [-3, 3]"),
        ("E3", on("E3"), "e3_close", cfg.e3_close,
         "logit per log1p(min(10, neighbours who adopted it earlier))"),
        ("E4", on("E4"), "e4_received", cfg.e4_received, "logit if the sender received it"),
        ("E4", on("E4"), "e4_bought", cfg.e4_bought,
         "extra logit if the re-sharer bought it first"),
        ("E5", on("E5"), "rising_every", float(cfg.rising_every),
         "every k-th item surges in its own week (with E5 off too)"),
        ("E5", on("E5"), "e5_hub_pick", cfg.e5_hub_pick, "P(hub seed shares a rising star)"),
        ("E5", on("E5"), "surge_factor", cfg.surge_factor,
         "sales in the two surge weeks vs the category's best ordinary item"),
        ("E6", on("E6"), "e6_hub", cfg.e6_hub, "logit if the sender is a hub"),
        ("E7", on("E7"), "e7_same_tier", cfg.e7_same_tier, "P(receiver/item in sender's tier)"),
        ("E8", on("E8"), "touch_session_rate", cfg.touch_session_rate,
         "share of organic browses with a touch session"),
        ("E8", cfg.intent_in("touch"), "e8_touch", cfg.e8_touch,
         "shift of a touch session's latent styles (length, product pages, purchase buttons, "
         "slow short swipes) per intent level (2: buys within 1 h, 1: within 1 day), in units "
         "of their spread across sessions; enabled = the touch view carries intent"),
        ("E8", cfg.intent_in("browse"), "e8_browse_stay", 1.0,
         "a browse's stay is (intent + 1) times as long, its action more often favourite or "
         "cart; enabled = the browse view carries intent"),
        ("coupon", True, "coupon_hesitant", cfg.coupon_hesitant,
         "P(a coupon at tau brings a purchase planned later that day into the hour)"),
        ("coupon", True, "coupon_cold", cfg.coupon_cold,
         "P(a coupon at tau makes a user with no purchase that day buy within the hour)"),
        ("E9", on("E9"), "e9_tie", cfg.e9_tie,
         f"logit per tie_score: clip(dear - cheap, -{TIE_CAP}, {TIE_CAP}) / {TIE_CAP} over the "
         f"pair's shares in the {TIE_WEEKS} weeks before; dear: PI >= {DEAR_PI}"),
        ("E10", on("E10"), "e10_repeat", cfg.e10_repeat,
         "P(a record's receiver is replaced by one of the sender's earlier contacts: people "
         "they shared with or received from before sharing)"),
        ("E10", on("E10"), "e10_tau_days", cfg.e10_tau_days,
         "decay time (days) of a contact's pull: chosen with weight exp(-age / tau), age = "
         "time since the pair's last interaction"),
    ]
    for key, value in asdict(cfg).items():
        if key in {"effects", "start"}:
            continue
        if isinstance(value, str):  # e8_views: the text is the setting
            rows.append(("world", True, key, None, f"generator setting: {value!r}"))
            continue
        rows.append(("world", True, key, float(value), "generator setting"))
    rows.append(("world", True, "start_epoch_days", float(cfg.start.toordinal() - 719163), "start"))
    return rows
