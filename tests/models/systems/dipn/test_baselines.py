"""The dipn baselines: GBDT's summary features by hand, its fit on a synthetic split, and
RNN+DNN's inputs (no lake: rows go straight into a ``SplitStore``)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from contracts import dipn as contract
from models.base import OptionError
from models.systems.dipn.baselines import (
    GBDT,
    RnnDnn,
    Timing,
    feature_names,
    summary_features,
)
from models.systems.dipn.task import (
    DipnSplit,
    DipnTask,
    collate_examples,
    roc_auc,
    store_from_arrow,
)
from tests.models.systems.dipn.shards import row, synthetic_rows

TAU = 10_000_000
MIN = 60_000
# swipes 30 s, 5 min, 30 min and 2 h before tau: three swipes (action 3) and a tap (action 4),
# gaps 6, 4, 2, 0 (0: not applicable), no duration; one tap 90 s before on button 5
HAND = row(1, 0, "train", [TAU], swipe=[
    (TAU - 120 * MIN, {"action": 3, "page": 2, "gap": 0}),
    (TAU - 30 * MIN, {"action": 3, "page": 2, "gap": 2}),
    (TAU - 5 * MIN, {"action": 4, "page": 3, "gap": 4}),
    (TAU - MIN // 2, {"action": 3, "page": 2, "gap": 6}),
], tap=[(TAU - 90_000, {"event": 2, "page": 3, "button": 5})], history=list(range(1, 10)),
    profile=(4, 5, 6))


def split_of(rows, max_len=contract.MAX_LEN):
    return DipnSplit(store_from_arrow(pa.Table.from_pylist(rows, contract.SHARD), max_len))


def test_summary_features_by_hand():
    x = summary_features(collate_examples(split_of([HAND])[:]))
    names = feature_names()
    assert x.shape == (1, len(names))
    got = dict(zip(names, x[0], strict=True))
    # swipes within 1 min: 1; 10 min: 2; 1 h: 3; all: 4. The tap (90 s): 0 1 1 1; no browse
    assert [got[f"swipe_events_{w}"] for w in ("1min", "10min", "1h", "all")] == [1, 2, 3, 4]
    assert [got[f"tap_events_{w}"] for w in ("1min", "10min", "1h", "all")] == [0, 1, 1, 1]
    assert got["browse_events_all"] == 0
    # the latest swipe 30 s before tau, the tap 90 s; no browse: NaN
    assert got["swipe_latest_age_s"] == 30.0 and got["tap_latest_age_s"] == 90.0
    assert math.isnan(got["browse_latest_age_s"])
    assert got["swipe_action_3_share"] == 0.75 and got["swipe_action_4_share"] == 0.25
    assert got["swipe_page_2_share"] == 0.75 and got["swipe_page_3_share"] == 0.25
    assert got["tap_button_5_share"] == 1.0 and got["tap_button_6_share"] == 0.0
    assert got["swipe_gap_mean"] == 4.0  # (2 + 4 + 6) / 3: the 0 is not a gap
    assert math.isnan(got["swipe_duration_mean"]) and math.isnan(got["browse_stay_mean"])
    assert x[0, -12:].tolist() == [*range(1, 10), 4, 5, 6]  # history, profile


@pytest.fixture(scope="module")
def synthetic():
    train = split_of(synthetic_rows(40, "train", seed=0), max_len=8)
    test = split_of(synthetic_rows(15, "test", seed=2, first_user=200), max_len=8)
    return train, test


def test_gbdt_finds_the_button_and_survives_a_checkpoint(synthetic):
    train, test = synthetic
    task = DipnTask("unused", max_len=8)
    model = GBDT(GBDT.make_config({"n_estimators": 50}), task.meta())
    model.fit(train, task)
    batch = collate_examples(test[:])
    proba = model.predict(batch)
    assert proba.shape == (len(test), 2)
    # label_1h is a tap on button 7 among the last 8 taps: button 7's share finds it;
    # label_1d a cart among the last 8 browse events: the share of type 4
    assert roc_auc(batch["y_1h"].numpy(), proba[:, 0].numpy()) > 0.9
    assert roc_auc(batch["y_1d"].numpy(), proba[:, 1].numpy()) > 0.9
    restored = GBDT(GBDT.make_config({"n_estimators": 50}), task.meta())
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.predict(batch), proba)


def test_timing_control_sees_when_not_what(synthetic):
    train, test = synthetic
    batch = collate_examples(test[:])
    names = feature_names(content=False)
    # per view 4 counts and the latest age, then 9 history and 3 profile ids
    assert len(names) == 3 * 5 + 12 and not any("share" in n or "mean" in n for n in names)
    x = summary_features(batch, content=False)
    full = dict(zip(feature_names(), summary_features(batch).T, strict=True))
    assert np.array_equal(x, np.stack([full[n] for n in names], 1), equal_nan=True)
    task = DipnTask("unused", max_len=8)
    model = Timing(Timing.make_config({"n_estimators": 50}), task.meta())
    model.fit(train, task)
    # the labels are a tap on button 7 / a cart among the last 8 events: what, not when.
    # GBDT finds both above 0.9 (test above); counts and ages do not
    proba = model.predict(batch)
    assert roc_auc(batch["y_1h"].numpy(), proba[:, 0].numpy()) < 0.75


def test_gbdt_sources_keep_their_views_alone(synthetic):
    train, test = synthetic
    task = DipnTask("unused", max_len=8)
    batch = collate_examples(test[:])
    aucs = {}
    for sources in ("tap", "browse,history"):
        config = GBDT.make_config({"n_estimators": 50, "sources": sources})
        model = GBDT(config, task.meta())
        model.fit(train, task)
        names = feature_names(sources=config.sources)
        assert summary_features(batch, sources=config.sources).shape == (len(test), len(names))
        proba = model.predict(batch).numpy()
        aucs[sources] = [roc_auc(batch[f"y_{h}"].numpy(), proba[:, j])
                         for j, h in enumerate(("1h", "1d"))]
    assert not any(n.startswith(("swipe", "browse")) for n in feature_names(sources=["tap"]))
    # the 1h label is a tap on button 7, the 1d label a cart among the browses: each view
    # alone finds its own label and not the other's
    assert aucs["tap"][0] > 0.9 and aucs["tap"][1] < 0.75
    assert aucs["browse,history"][1] > 0.9 and aucs["browse,history"][0] < 0.75
    with pytest.raises(OptionError, match="sources"):
        GBDT.make_config({"sources": "swipe,clicks"})


def test_gbdt_single_head(synthetic):
    train, test = synthetic
    task = DipnTask("unused", max_len=8, task_head="1d")
    model = GBDT(GBDT.make_config({"n_estimators": 5}), task.meta())
    model.fit(train, task)
    assert len(model.estimator) == 1
    assert model.predict(collate_examples(test[:4])).shape == (4, 1)


def test_gbdt_refuses_a_single_class():
    task = DipnTask("unused")
    model = GBDT(GBDT.make_config({"n_estimators": 5}), task.meta())
    with pytest.raises(ValueError, match="single class of label_1h"):
        model.fit(split_of([HAND]), task)


def test_rnn_dnn_reads_browse_history_and_profile_only(synthetic):
    train, _ = synthetic
    batch = collate_examples(train[:12])
    torch.manual_seed(0)
    model = RnnDnn(RnnDnn.make_config({"hidden": 4, "fc": 8, "dnn": 8, "head_hidden": 8}),
                   {"max_len": 8, "heads": ["1h", "1d"]}).eval()
    out = model.logits(batch)
    assert out.shape == (12, 2)
    rng = np.random.default_rng(0)
    for view, moves in (("swipe", False), ("tap", False), ("browse", True), ("history", True),
                        ("profile", True)):
        changed = dict(batch)
        changed[view] = torch.from_numpy(rng.integers(1, 5, batch[view].shape))
        assert torch.allclose(out, model.logits(changed)) != moves, view
    model.train()
    loss = model.loss(batch)
    loss.backward()
    assert math.isfinite(loss.item())
    assert model.embed["browse"].fc.weight.grad.abs().sum() > 0
