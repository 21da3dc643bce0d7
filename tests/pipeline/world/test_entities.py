"""Items and rising stars (E5)."""

from __future__ import annotations

import pytest

from pipeline.world import WorldConfig, items, parse_effects


@pytest.mark.parametrize(
    ("records", "every", "expected"),
    [
        # 200k records -> 2000 items; ids 137, 287, ..., 1937: (1937 - 137) / 150 + 1 = 13
        (200_000, 150, 13),
        # default: max(10 categories, 2000 // 2000) = 10 stars -> every 200th: 137, ..., 1937
        (200_000, 0, 10),
        # rising_every below the offset 137: offset 137 % 100 = 37 -> ids 37, 137, ..., 1937 = 20
        (200_000, 100, 20),
    ],
)
def test_rising_stars_are_planted(spark, records, every, expected):
    cfg = WorldConfig(share_records=records, rising_every=every)
    assert items(spark, cfg).where("rising").count() == expected
    off = WorldConfig(share_records=records, rising_every=every, effects=parse_effects("-E5"))
    assert items(spark, off).where("rising").count() == 0
