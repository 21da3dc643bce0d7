"""Property: for any CSV of share records, good or bad, every line is one record, accepted or
quarantined with a reason, and an accepted record holds exactly the values written."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest import RAW_TEXT, REASON, ROW, Rules, read_validated

MAX_TS = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
GOOD_TS = ["2024-01-01 10:00:00", "2024-02-29T23:59:59Z", "2020-06-01 00:00:00+02:00"]
BAD_TS = ["abc", "1999-12-31 23:59:59", "2024-13-01 00:00:00", ""]
BAD_IDS = ["x", "", "1.5", "-1", "9223372036854775808", "1e3"]

SHAPES = ["plain"] * 4 + ["quoted", "short", "long", "open quote"]


@st.composite
def lines(draw) -> str:
    """A CSV line: mostly a good record, with a bad value or a bad shape now and then."""
    fields = [str(draw(st.integers(0, 10**12))) for _ in range(3)]
    fields.append(draw(st.sampled_from(GOOD_TS)))
    for i in range(4):
        if draw(st.integers(0, 9)) == 0:
            fields[i] = draw(st.sampled_from(BAD_TS if i == 3 else BAD_IDS))
    shape = draw(st.sampled_from(SHAPES))
    if shape == "quoted":
        fields = [f'"{value}"' for value in fields]
    elif shape == "short":
        fields = fields[:3]
    elif shape == "long":
        fields = [*fields, "extra"]
    elif shape == "open quote":
        fields[3] = '"' + fields[3]
    return ",".join(fields)


def _expected(line: str) -> tuple[int, int, int, dt.datetime] | None:
    """The values an accepted line must hold: the generated ones, parsed here."""
    sender, receiver, item, ts = (value.strip('"') for value in line.split(","))
    return int(sender), int(receiver), int(item), dt.datetime.fromisoformat(ts)


@settings(max_examples=5, deadline=None, derandomize=True)
@given(st.lists(lines(), min_size=1, max_size=25))
def test_every_line_is_one_record_and_accepted_ones_round_trip(spark, tmp_path_factory, body):
    source = tmp_path_factory.mktemp("property") / "shares.csv"
    source.write_text("\n".join(["sender_id,receiver_id,item_id,ts", *body]) + "\n")
    rules = Rules.for_table("shares", max_ts=MAX_TS)
    rows = read_validated(spark, [source], "csv", rules).collect()
    assert sorted(r[ROW] for r in rows) == list(range(2, len(body) + 2))
    for r in rows:
        line = body[r[ROW] - 2]
        assert r[RAW_TEXT] == line
        if r[REASON] is None:  # accepted: exactly the generated values
            sender, receiver, item, ts = _expected(line)
            assert (r.sender_id, r.receiver_id, r.item_id) == (sender, receiver, item)
            # Without an offset a time is read in the session's zone (UTC, spark-defaults.conf).
            assert r.ts.timestamp() == (ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)).timestamp()
            assert min(sender, receiver, item) >= 0 and sender != receiver
        else:
            assert r[REASON].strip()
