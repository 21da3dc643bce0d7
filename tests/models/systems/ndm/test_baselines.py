"""The diffusion-network baselines of the NDM task: NetRate, InfoPath and Embedded IC."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
import torch

from models.base import get_model
from models.systems.ndm.diffusion import Links, normalise_times
from models.systems.ndm.embedded_ic import EmbeddedIC
from models.systems.ndm.infopath import InfoPath
from models.systems.ndm.netrate import NetRate, log_likelihood, netrate_terms
from models.systems.ndm.simulation import Simulable, simulate
from models.systems.ndm.task import NdmTask

META = {"n_users": 4, "vocab": 5, "terminate": 4, "pad": 5, "max_len": 3}
VOCAB = 5


def _links(pairs: list[tuple[int, int]], n_users: int = 4) -> Links:
    pairs = sorted(pairs)
    return Links(torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]),
                 n_users)


def _cascades(spec: list[tuple[list[int], list[float]]]) -> list[dict]:
    return [{"cascade_id": i, "users": torch.tensor(u), "times": torch.tensor(t)}
            for i, (u, t) in enumerate(spec)]


def test_netrate_log_likelihood_of_a_three_user_cascade_hand_worked():
    # Cascade 0 -> 1 -> 2 at times 0, 1, 3, window T = 4; user 3 is never infected.
    # Links (sorted): 0->1 (0.5), 0->2 (0.2), 0->3 (0.1), 1->0 (0.4), 1->2 (0.3), 2->3 (0.25).
    # hazards:   user 1: log a01 = log 0.5;   user 2: log(a02 + a12) = log 0.5
    # survival:  a01 (1 - 0) + a02 (3 - 0) + a12 (3 - 1) = 0.5 + 0.6 + 0.6 = 1.7
    # uninfected user 3: a03 (4 - 0) + a23 (4 - 3) = 0.4 + 0.25 = 0.65 (no link 1->3)
    # 1->0 plays no part: 0 was infected before 1.
    # log L = 2 log 0.5 - 1.7 - 0.65 = -1.386294361 - 2.35 = -3.736294361
    links = _links([(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (2, 3)])
    alpha = torch.tensor([0.5, 0.2, 0.1, 0.4, 0.3, 0.25], dtype=torch.float64)
    terms = netrate_terms([torch.tensor([0, 1, 2])], [torch.tensor([0.0, 1.0, 3.0])], 4.0, links)
    assert terms.n_groups == 2
    # Per link, the rate's coefficient: 1, 3, 4, 0, 2 and 1 (from the working above).
    assert terms.linear.tolist() == [1.0, 3.0, 4.0, 0.0, 2.0, 1.0]
    assert log_likelihood(alpha, terms).item() == pytest.approx(2 * math.log(0.5) - 2.35,
                                                                abs=1e-6)


def test_netrate_fit_rates_a_quick_pair_above_a_slow_rare_one():
    # 10 cascades 0 -> 1 one time unit apart; 10 cascades 2 -> 3 ten units apart and 10 where
    # 2 is alone. Times are divided by the longest duration (10): gaps 0.1 and 1, T = 1.
    # 0's only link is 0->1: log L = 10 (log a - 0.1 a), maximal at a01 = 10.
    # 2->3: 10 (log a - 1 a) - 10 a (2 alone, the whole window), maximal at a23 = 0.5.
    # 0 and 3 never meet: no link, rate 0.
    spec = [([0, 1], [5.0, 6.0])] * 10 + [([2, 3], [0.0, 10.0])] * 10 + [([2], [3.0])] * 10
    model = NetRate(NetRate.make_config(), META)
    model.fit(_cascades(spec), None)
    assert model.time_scale.item() == 10.0 and model.window.item() == pytest.approx(1.0)
    rates = model.out_rates(torch.tensor([0, 2])).double()  # (2, 4)
    assert rates[0, 1].item() == pytest.approx(10.0, rel=1e-6)
    assert rates[1, 3].item() == pytest.approx(0.5, rel=1e-6)
    assert rates[0, 3].item() == 0.0 and rates[0].sum().item() == pytest.approx(10.0)


def test_tied_times_are_broken_and_scaled():
    times, scale = normalise_times([torch.tensor([4.0, 4.0, 6.0]), torch.tensor([1.0, 5.0])])
    assert scale == 4.0  # the longest duration
    assert times[0].tolist() == pytest.approx([0.0, 1e-6, 0.5])
    assert times[1].tolist() == [0.0, 1.0]


def test_netrate_simulation_races_clocks_and_terminates_at_the_window():
    # Chain 0 -> 1 (rate 1) -> 2 (rate 2), window T = 1. With delays X1 ~ Exp(1), X2 ~ Exp(2):
    # P(1 infected) = 1 - e^-1 = 0.632; P(2 infected) = P(X1 + X2 < 1)
    #   = 1 - (2 e^-1 - e^-2) / (2 - 1) = 0.3996.
    # (Restarting the clock at each infection would give 0.632 (1 - e^-2) = 0.547.)
    model = NetRate(NetRate.make_config(), META).eval()
    model.set_rates(_links([(0, 1), (1, 2)]), torch.tensor([1.0, 2.0]))
    out = simulate(model, torch.tensor([0]), 6000, 3, VOCAB, torch.Generator().manual_seed(0))
    p = out["counts"] / 6000
    assert p[0] == 0 and p[3] == 0  # the given user is masked; 3 is unreachable
    assert p[1].item() == pytest.approx(1 - math.exp(-1), abs=0.02)
    assert p[2].item() == pytest.approx(1 - (2 * math.exp(-1) - math.exp(-2)), abs=0.02)
    assert out["sizes"].max().item() == 2  # Terminate after 2: room for 3 is left unused
    again = simulate(model, torch.tensor([0]), 6000, 3, VOCAB, torch.Generator().manual_seed(0))
    assert torch.equal(again["counts"], out["counts"])  # every draw is the generator's


def test_infopath_tracks_the_rate_of_each_time_bucket():
    # Bucket 1 (earlier starts): ten cascades 0 -> 1, one unit apart: a01 = 1 (T = 1).
    # Bucket 2: one such cascade and nine where 0 is alone: log a - a - 9 a, so a01 = 0.1.
    # A bucket fits in one batch and 0 -> 1 is each infection's only parent, so each step is
    # the exact maximiser.
    spec = [([0, 1], [float(s), s + 1.0]) for s in range(10)]
    spec += [([0, 1], [100.0, 101.0])] + [([0], [101.0 + s]) for s in range(9)]
    model = InfoPath(InfoPath.make_config({"buckets": 2, "epochs": 3}), META)
    model.fit(_cascades(spec), None)
    assert model.bucket_rates[:, 0].tolist() == pytest.approx([1.0, 0.1], rel=1e-6)
    assert torch.equal(model.rate, model.bucket_rates[-1])  # simulated with the last bucket
    assert model.bucket_starts.tolist() == [0.0, 100.0]


def _ic_with_rounds() -> EmbeddedIC:
    # 0 infects 1 and 2, 1 infects 3, each with p = sigmoid(10) = 0.99995; every other pair
    # is 10 apart (p = sigmoid(-90), 0). Receiver bias -10 for all.
    model = EmbeddedIC(EmbeddedIC.make_config({"dim": 3}), META).eval()
    with torch.no_grad():
        model.sender.copy_(torch.tensor([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10.0]]))
        model.receiver.copy_(torch.tensor([[0, -10, 0], [0, 0, 0], [0, 0, 0], [10, 0, 0.0]]))
        model.bias.fill_(-10.0)
    return model


def test_embedded_ic_simulates_rounds_in_order_then_terminates():
    model = _ic_with_rounds()
    out = simulate(model, torch.tensor([0]), 2000, 4, VOCAB, torch.Generator().manual_seed(0),
                   early=2)
    # Round 1 = {1, 2} (in random order), round 2 = {3}, then nobody: Terminate after 3 users.
    assert (out["counts"] / 2000).tolist() == [0.0, 1.0, 1.0, 1.0]
    assert (out["early_counts"] / 2000).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert out["sizes"].tolist() == [3] * 2000
    # From 2 nobody is infected: every simulation stops at once.
    assert simulate(model, torch.tensor([2]), 50, 3, VOCAB,
                    torch.Generator().manual_seed(0))["sizes"].sum().item() == 0
    # Which of round 1 comes first is a fair coin.
    first = simulate(model, torch.tensor([0]), 2000, 1, VOCAB, torch.Generator().manual_seed(1))
    assert (first["counts"][1] / 2000).item() == pytest.approx(0.5, abs=0.05)


def test_embedded_ic_likelihood_matches_its_formula():
    # p_uv for the model above: p01 = p02 = p13 = s = sigmoid(10), all else q = sigmoid(-90).
    # Cascade 0 -> 1 -> 3: log s + log(1 - (1 - q)(1 - s)) + [v = 2: log(1 - s) + 2 log(1 - q)].
    model = _ic_with_rounds()
    s, q = 1 / (1 + math.exp(-10)), 1 / (1 + math.exp(90))
    expected = math.log(s) + math.log(1 - (1 - q) * (1 - s)) + math.log(1 - s) \
        + 2 * math.log(1 - q)
    got = model.log_likelihood(torch.tensor([[0, 1, 3]])).item()
    assert got == pytest.approx(expected, rel=1e-4)
    # Padding adds nothing.
    padded = model.log_likelihood(torch.tensor([[0, 1, 3, 5]])).item()
    assert padded == pytest.approx(got, rel=1e-6)


@pytest.mark.parametrize("name", ["netrate", "infopath", "embedded_ic"])
def test_each_baseline_implements_the_protocol_and_masks_infected(name):
    cls = get_model("ndm", name)
    assert issubclass(cls, Simulable) and cls.draws_in_simulation and not cls.trainable
    model = cls(cls.make_config({"steps": 100} if name == "embedded_ic" else {}), META).eval()
    spec = [([0, 1, 2], [0.0, 1.0, 2.0]), ([2, 3], [0.0, 1.0]), ([1, 3, 0], [5.0, 6.0, 8.0])]
    model.fit(_cascades(spec * 4), None)
    users = torch.tensor([[0, 1, 2], [3, 5, 5]])
    prob = model.predict({"users": users}).exp()  # (2, 3, 5)
    for b, j in [(0, 0), (0, 1), (0, 2), (1, 0)]:
        assert prob[b, j, users[b, : j + 1]].sum().item() == 0.0
        assert prob[b, j].sum().item() == pytest.approx(1.0, abs=1e-5)
    out = simulate(model, torch.tensor([1, 3]), 300, 2, VOCAB, torch.Generator().manual_seed(0))
    assert out["counts"][1] == 0 and out["counts"][3] == 0
    assert out["counts"].max() <= 300 and out["sizes"].max() <= 2
    # A fitted model survives a checkpoint round trip into a fresh one (buffer sizes included).
    fresh = cls(cls.make_config(), META)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh.predict({"users": users}), model.predict({"users": users}))


def _tiny_lake(tmp_path) -> str:
    from deltalake import write_deltalake

    lake = tmp_path / "lake"
    # 6 users; train cascades repeat 0 -> 1 -> 2 and 3 -> 4 -> 5, one time unit apart.
    rows = [(i, "train", [0, 1, 2] if i % 2 else [3, 4, 5]) for i in range(40)]
    rows += [(100, "val", [0, 1, 2]), (101, "val", [3, 4, 5])]
    rows += [(200, "test", [0, 1, 2]), (201, "test", [3, 4]), (202, "test", [5])]
    table = pa.table({
        "cascade_id": pa.array([r[0] for r in rows], pa.int64()),
        "split": [r[1] for r in rows],
        "users": pa.array([r[2] for r in rows], pa.list_(pa.int64())),
        "times": pa.array([[10.0 * r[0] + t for t in range(len(r[2]))] for r in rows],
                          pa.list_(pa.float64())),
    })
    write_deltalake(str(lake / "shards" / "ndm" / "tiny"), table)
    users = pa.table({"user_id": pa.array(range(6), pa.int64()),
                      "user_name": [f"u{i}" for i in range(6)]})
    write_deltalake(str(lake / "shards" / "ndm" / "tiny_users"), users)
    return str(lake)


def test_evaluate_scores_each_baseline_on_a_tiny_shard(tmp_path):
    # Times come from the shard (the task's examples carry only users). NetRate on the
    # 0 -> 1 -> 2 cascades, gaps 1/2 of the longest duration, T = 1: a01 = 2 and a12 = 2
    # (a02 = 0: 2 comes sooner after 1). From 0, P(1) = 1 - e^-2 = 0.86 and
    # P(2) = P(Exp(2) + Exp(2) < 1) = 1 - 3 e^-2 = 0.59; nobody else is reachable, so
    # cascade 200 has pre 1, rec 0.73, f 0.84 and 201 (3 -> 4) pre 1, rec 0.86, f 0.93.
    lake = _tiny_lake(tmp_path)
    task = NdmTask(lake, "tiny", sims=400, size_sims=20)
    test = task.load_split("test")
    for name, overrides in (("netrate", {}), ("infopath", {"epochs": 10}),
                            ("embedded_ic", {"steps": 150, "dim": 8, "lr": 0.1})):
        cls = get_model("ndm", name)
        model = cls(cls.make_config(overrides), task.meta())
        model.fit(task.load_split("train"), task)
        m = task.evaluate(model, test, torch.device("cpu"))
        assert m["cascades_f1"] == 2 and {"msle", "hits@10", "macro_f1_early"} <= set(m)
        assert m["macro_f1"] > 0.6, (name, m)
        if name == "netrate":
            assert m["macro_f1"] == pytest.approx((0.84 + 0.93) / 2, abs=0.04)
