"""Items and rising stars (E5)."""

from __future__ import annotations

import pytest

from pipeline.world import WorldConfig, items, parse_effects


@pytest.mark.parametrize(
    ("records", "every", "expected"),
    [
        # 200k records -> 2000 items; ids 137, 287, ..., 1937: (1937 - 137) / 150 + 1 = 13
        (200_000, 150, 13),
        # default: 10 categories x 1 slot (ceil(2000 / 10 / 1000)) x 7 surge weeks (5..11) = 70
        # stars -> every 2000 // 70 = 28th item, offset 137 % 28 = 25: (1999 - 25) // 28 + 1 = 71
        (200_000, 0, 71),
        # rising_every below the offset 137: offset 137 % 100 = 37 -> ids 37, 137, ..., 1937 = 20
        (200_000, 100, 20),
    ],
)
def test_rising_stars_are_planted(spark, records, every, expected):
    cfg = WorldConfig(share_records=records, rising_every=every)
    assert items(spark, cfg).where("rising").count() == expected
    # the stars surge with E5 off too: E5 is the diffusion that announces them
    off = WorldConfig(share_records=records, rising_every=every, effects=parse_effects("-E5"))
    assert items(spark, off).where("rising").count() == expected


def test_stars_take_turns_over_categories_and_surge_weeks(spark):
    from pyspark.sql import functions as F

    cfg = WorldConfig(share_records=200_000)  # 71 stars: j = 0..70, see above
    stars = items(spark, cfg).where("rising")
    cells = {(r[0], r[1]): r[2] for r in stars.groupBy("top_category", "surge_week").count()
             .collect()}
    # j -> category j % 10, week 5 + (j // 10) % 7: every one of the 70 cells once, and
    # j = 70 a second time in (0, 5)
    assert len(cells) == 70 and cells[(0, 5)] == 2
    assert {w for _, w in cells} == set(range(5, 12))
    assert sum(cells.values()) == 71
    off = WorldConfig(share_records=200_000, effects=parse_effects("-E5"))
    assert items(spark, off).where(F.col("surge_week").isNotNull()).count() == 71
