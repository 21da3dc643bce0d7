"""How the world's users answer a coupon: an intervention the logged data never saw.

DIPN's online test (its Table 7) sends coupons to users whose predicted intent falls in a middle
band: a sure buyer buys anyway and a cold user mostly ignores the coupon, so the coupon is worth
most to the hesitant. The world has no coupons in its logs; this is its answer to one, used by
``benchmarks/dipn_coupons.py`` to compare sending strategies on the test cuts.

A cut (a user at ``tau``) has what happens without a coupon, read from its labels: it *buys now*
(a purchase within 1 hour), *buys later* (within the day, not the hour) or *does not buy*. A
coupon sent at ``tau``:

* to a user who buys now: changes nothing (the purchase happens anyway, the coupon is spent);
* to a user who buys later: brings the purchase into the hour with probability
  ``coupon_hesitant`` (``WorldConfig``, 0.5);
* to a user who does not buy: makes her buy within the hour with probability ``coupon_cold``
  (0.02).

A strategy's worth is its extra purchases within the hour per coupon sent. Each cut's coin is a
hash of (seed, the cut's id), so every strategy meets the same users' same answers.
"""

from __future__ import annotations

import numpy as np

#: Outcome classes of a cut without a coupon.
BUYS_NOW, BUYS_LATER, NO_BUY = 2, 1, 0


def outcome_class(label_1h: np.ndarray, label_1d: np.ndarray) -> np.ndarray:
    """2: a purchase within the hour, 1: within the day only, 0: none."""
    label_1h = np.asarray(label_1h, dtype=bool)
    label_1d = np.asarray(label_1d, dtype=bool)
    return np.where(label_1h, BUYS_NOW, np.where(label_1d, BUYS_LATER, NO_BUY)).astype(np.int8)


def coin(seed: int, ids: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) per id, a hash of (seed, id) (splitmix64)."""
    x = (np.asarray(ids, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15))
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def extra_purchases(classes: np.ndarray, sent: np.ndarray, u: np.ndarray, hesitant: float,
                    cold: float) -> int:
    """Purchases within the hour that the coupons ``sent`` (bool per cut) add, with each cut's
    coin ``u``."""
    classes, sent, u = np.asarray(classes), np.asarray(sent, dtype=bool), np.asarray(u)
    moved = sent & (classes == BUYS_LATER) & (u < hesitant)
    won = sent & (classes == NO_BUY) & (u < cold)
    return int(moved.sum() + won.sum())
