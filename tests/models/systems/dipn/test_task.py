"""The dipn task on hand-made shard rows in a tmp lake (no Spark).

User 7, day 2 (train) is written out by hand (times in ms):
    swipe: 100 (page 1), 200 (page 2), 300 (page 3), 400 (page 4), 500 (page 5)
    tap:   150 (button 11), 350 (button 12), 450 (button 13)
    browse: 250 (type 1)
    cuts at tau = 350, 450, 500: the events at or before tau are
        tau 350: swipe pages 1 2 3, taps 11 12, browse 1   (ends 3, 2, 1)
        tau 450: swipe pages 1 2 3 4, taps 11 12 13, browse 1   (ends 4, 3, 1)
        tau 500: swipe pages 1..5, taps 11 12 13, browse 1   (ends 5, 3, 1)
User 3, day 5 (train) has one cut and sorts first; user 9 (val) holds four cuts for scoring.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
import torch

from contracts import ContractError
from contracts import dipn as contract
from models.base import OptionError, ShardModel
from models.systems.dipn.task import (
    DipnExample,
    DipnTask,
    ShardLeakError,
    collate_examples,
    store_from_arrow,
)
from tests.models.systems.dipn.shards import row, write_lake

SWIPE = [(100 * i, {"page": i, "action": 3}) for i in range(1, 6)]
TAP = [(150, {"event": 2, "page": 1, "button": 11}), (350, {"event": 2, "page": 1, "button": 12}),
       (450, {"event": 2, "page": 1, "button": 13})]
BROWSE = [(250, {"type": 1, "leaf_category": 5, "top_category": 2, "page": 3, "stay": 4,
                 "hour": 1})]
HAND = row(7, 2, "train", [350, 450, 500], SWIPE, TAP, BROWSE, labels_1h=[0, 1, 0],
           labels_1d=[1, 1, 0])
OTHER = row(3, 5, "train", [1000], [(900, {"page": 9})], [(1000, {"button": 1, "event": 1})])
VAL = row(9, 1, "val", [100, 200, 300, 400], [(t, {"page": 1}) for t in (100, 200, 300, 400)],
          labels_1h=[1, 0, 1, 0], labels_1d=[0, 1, 1, 1])
PAGE, BUTTON, TYPE = 0, 2, 0  # columns of swipe.page, tap.button, browse.type


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return write_lake(tmp_path_factory.mktemp("dipn") / "lake", [HAND, OTHER, VAL])


def store(rows, max_len=contract.MAX_LEN):
    return store_from_arrow(pa.Table.from_pylist(rows, contract.SHARD), max_len, "hand")


def test_rows_expand_into_cuts_right_aligned(lake):
    task = DipnTask(lake, max_len=3)
    train = task.load_split("train")
    assert len(train) == 4 and train.split == "train"
    # ordered by (user_id, day): user 3's cut first, then user 7's cuts k = 0, 1, 2
    assert [ex.example_id for ex in train] == [(3 << 28) + (5 << 16), *[
        (7 << 28) + (2 << 16) + k for k in range(3)]]
    batch = task.collate(train[1:])
    assert batch["swipe"].shape == (3, 3, 14) and batch["swipe"].dtype == torch.int64
    assert batch["tap"].shape == (3, 3, 3) and batch["browse"].shape == (3, 3, 6)
    # max_len 3 keeps the last three events before tau, the latest last
    assert batch["swipe"][..., PAGE].tolist() == [[1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert batch["swipe_age"].tolist() == [[250, 150, 50], [250, 150, 50], [200, 100, 0]]
    # tau 350 has two taps: left-padded with 0, masked
    assert batch["tap"][..., BUTTON].tolist() == [[0, 11, 12], [11, 12, 13], [11, 12, 13]]
    assert batch["tap_mask"].tolist() == [[False, True, True], [True] * 3, [True] * 3]
    assert batch["tap_age"].tolist() == [[0, 200, 0], [300, 100, 0], [350, 150, 50]]
    assert batch["browse"][..., TYPE].tolist() == [[0, 0, 1]] * 3
    assert batch["browse"][:, 2].tolist() == [[1, 5, 2, 3, 4, 1]] * 3
    assert batch["browse_mask"][:, :2].any().item() is False
    assert batch["browse_age"][:, 2].tolist() == [100, 200, 250]
    assert batch["y_1h"].tolist() == [0.0, 1.0, 0.0] and batch["y_1d"].tolist() == [1.0, 1.0, 0.0]
    assert batch["cut_ts"].tolist() == [350, 450, 500] and batch["user_id"].tolist() == [7] * 3
    # cut k's history: 1 + (k + j) % 5 for j = 0..8; the row's profile on every cut
    assert batch["history"][1].tolist() == [2, 3, 4, 5, 1, 2, 3, 4, 5]
    assert batch["profile"].tolist() == [[1, 2, 3]] * 3
    assert task.example_length(train[1]) == 3 + 2 + 1


def test_full_length_pads_to_the_longest_view_of_the_batch(lake):
    batch = DipnTask(lake).collate(DipnTask(lake).load_split("train")[1:])
    # tau 500 holds all five swipes, so L = 5
    assert batch["swipe"][..., PAGE].tolist() == [[0, 0, 1, 2, 3], [0, 1, 2, 3, 4],
                                                  [1, 2, 3, 4, 5]]
    assert batch["tap"][0, :, BUTTON].tolist() == [0, 0, 0, 11, 12]


def test_a_view_without_events_gives_a_masked_step():
    split = store([row(1, 0, "train", [10], tap=[(10, {"button": 3})])])
    batch = collate_examples([DipnExample(split, 0)])
    assert batch["swipe"].shape == (1, 1, 14) and not batch["swipe_mask"].any()
    assert batch["tap_mask"].tolist() == [[True]]


def test_leak_guard_fires_on_an_end_past_tau():
    leaky = row(7, 2, "train", [350], SWIPE, TAP, BROWSE, ends={"tap": [3]})  # takes 450 > 350
    with pytest.raises(ShardLeakError, match=r"user 7 day 2: cut 0 \(tau 350\).*tap.*450"):
        store([leaky])


@pytest.mark.parametrize("change, message", [
    ({"ends": {"swipe": [2]}}, "leaves out the swipe event at 300"),
    ({"ends": {"browse": [2]}}, "cut_browse_end 2 is outside 0..1"),
    ({"tap": TAP[::-1]}, "tap_ts is not in time order at event 1"),
    ({"tap": [(150, {"button": 128})]}, "tap event 0: feature 'button' has id 128, outside"),
    ({"labels_1h": [2]}, "label is neither 0 nor 1"),
    ({"profile": (1, 2)}, "profile holds 2 values, expected 3"),
])
def test_rows_that_break_the_contract_are_named(change, message):
    kwargs = {"swipe": SWIPE, "tap": TAP[:1], "browse": BROWSE, **change}
    bad = row(7, 2, "train", [350], **kwargs)
    with pytest.raises(ContractError, match=message) as caught:
        store([bad])
    assert not isinstance(caught.value, ShardLeakError)


def test_schema_is_checked(tmp_path):
    from deltalake import write_deltalake

    table = pa.Table.from_pylist([HAND], contract.SHARD).drop_columns(["cut_tap_end"])
    write_deltalake(str(tmp_path / "shards" / "dipn"), table)
    with pytest.raises(ContractError, match="'cut_tap_end' is missing"):
        DipnTask(str(tmp_path)).load_split("train")


class FixedScores(ShardModel):
    """Scores by cut time: tau -> (p_1h, p_1d)."""

    SCORES = {100: (0.9, 0.5), 200: (0.8, 0.4), 300: (0.3, 0.6), 400: (0.1, 0.7)}

    def __init__(self, heads):
        super().__init__(None, {})
        self.columns = [("1h", "1d").index(h) for h in heads]

    def predict(self, batch):
        rows = [self.SCORES[int(t)] for t in batch["cut_ts"]]
        return torch.tensor(rows)[:, self.columns]


def test_evaluate_both_heads(lake):
    task = DipnTask(lake)
    val = task.load_split("val")
    metrics = task.evaluate(FixedScores(("1h", "1d")), val, torch.device("cpu"))
    # 1h: labels 1 0 1 0, scores .9 .8 .3 .1: positives .9 .3 against negatives .8 .1 win
    # 3 of 4 pairs. 1d: labels 0 1 1 1, scores .5 .4 .6 .7: .6 and .7 beat .5, .4 does not
    assert metrics["auc_1h"] == pytest.approx(0.75)
    assert metrics["auc_1d"] == pytest.approx(2 / 3)
    assert metrics["positive_rate_1h"] == 0.5 and metrics["positive_rate_1d"] == 0.75
    assert metrics["n"] == 4 and task.primary_metric == "auc_1h"
    scored = task.example_scores(FixedScores(("1h", "1d")), val, torch.device("cpu"))
    assert scored["label"].tolist() == [1, 0, 1, 0]
    assert scored["score"] == pytest.approx([0.9, 0.8, 0.3, 0.1])
    assert scored["example_id"].tolist() == [(9 << 28) + (1 << 16) + k for k in range(4)]


def test_single_head_reports_only_that_head(lake):
    task = DipnTask(lake, task_head="1d")
    assert task.meta() == {"max_len": contract.MAX_LEN, "heads": ["1d"]}
    assert task.primary_metric == "auc_1d"
    val = task.load_split("val")
    metrics = task.evaluate(FixedScores(("1d",)), val, torch.device("cpu"))
    assert set(metrics) == {"n", "auc_1d", "positive_rate_1d"}
    assert metrics["auc_1d"] == pytest.approx(2 / 3)
    scored = task.example_scores(FixedScores(("1d",)), val, torch.device("cpu"))
    assert scored["label"].tolist() == [0, 1, 1, 1]


def test_single_class_auc_is_nan(lake):
    task = DipnTask(lake)
    metrics = task.evaluate(FixedScores(("1h", "1d")), task.load_split("val")[:1],
                            torch.device("cpu"))
    assert math.isnan(metrics["auc_1h"])


@pytest.mark.parametrize("options", [{"max_len": 0}, {"max_len": contract.MAX_LEN + 1},
                                     {"task_head": "2h"}, {"eval_batch_size": 0}])
def test_bad_options(options):
    with pytest.raises(OptionError):
        DipnTask("unused", **options)


def test_manifest_version_is_checked(tmp_path):
    from deltalake import write_deltalake

    lake = write_lake(tmp_path, [HAND])
    write_deltalake(str(tmp_path / "shards" / contract.MANIFEST_TABLE),
                    pa.table({"schema_version": [contract.SCHEMA_VERSION + 1],
                              "run_id": ["x"], "json": ["{}"]}))
    with pytest.raises(ContractError, match="schema_version"):
        DipnTask(lake).load_split("train")


def test_an_empty_split_scores_nan(lake):
    task = DipnTask(lake)
    test = task.load_split("test")  # the lake holds no test row
    assert len(test) == 0
    metrics = task.evaluate(FixedScores(("1h", "1d")), test, torch.device("cpu"))
    assert metrics["n"] == 0 and math.isnan(metrics["auc_1h"]) and math.isnan(metrics["auc_1d"])
