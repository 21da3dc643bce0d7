"""Hashed random draws: each is a hash of (seed, salt, the row's identity columns).

A draw is a pure function of its inputs, the same on every executor whatever the partitioning,
so a seed gives identical tables on any number of cores or machines. Salts keep the draws of
different decisions about the same row independent.
"""

from __future__ import annotations

import math

from pyspark.sql import Column
from pyspark.sql import functions as F

_TWO53 = float(2**53)


def uniform(seed: int, salt: str, *cols: Column | str) -> Column:
    """A uniform draw in [0, 1): a hash of (seed, salt, cols), the same on every executor."""
    h = F.xxhash64(F.lit(seed), F.lit(salt), *[F.col(c) if isinstance(c, str) else c for c in cols])
    return (F.pmod(h, F.lit(2**53)) + F.lit(0.5)) / F.lit(_TWO53)


def exponential(seed: int, salt: str, mean: float, *cols: Column | str) -> Column:
    return -F.log(uniform(seed, salt, *cols)) * F.lit(mean)


def normal(seed: int, salt: str, *cols: Column | str) -> Column:
    """Box-Muller from two hashed uniforms."""
    u1 = uniform(seed, salt + ":a", *cols)
    u2 = uniform(seed, salt + ":b", *cols)
    return F.sqrt(-2 * F.log(u1)) * F.cos(2 * math.pi * u2)


def sigmoid(x: Column) -> Column:
    return F.lit(1.0) / (F.lit(1.0) + F.exp(-x))
