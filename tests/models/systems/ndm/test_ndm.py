"""NDM task and models: F1 formulas, masking, simulation, incremental inference, end to end."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from models.base import ShardModel, get_model
from models.systems.ndm.cascade import infected_mask
from models.systems.ndm.ndm import NDM
from models.systems.ndm.simulation import simulate
from models.systems.ndm.task import NdmTask, f1_scores, tie_aware_rank

DATA = Path(__file__).parents[2].parent / "shared" / "data" / "cascades"


def test_f1_formulas_hand_worked():
    # Two test cascades, |U| = 5.
    # c1: G = {1, 2}; P = {1: 0.5, 2: 0.25, 3: 0.25}
    #     sum_G P = 0.75, sum_U P = 1.0 -> pre = 0.75, rec = 0.75 / 2 = 0.375
    #     f = 2 * 0.75 * 0.375 / 1.125 = 0.5
    # c2: G = {4}; P = {3: 0.5}: sum_G P = 0, sum_U P = 0.5 -> pre = rec = f = 0
    # Macro-F1 = (0.5 + 0) / 2 = 0.25
    # Micro: pre = (0.75 + 0) / (1.0 + 0.5) = 0.5, rec = 0.75 / (2 + 1) = 0.25
    #        F1 = 2 * 0.5 * 0.25 / 0.75 = 1/3
    got = f1_scores([0.75, 0.0], [1.0, 0.5], [2, 1])
    assert got["macro_f1"] == pytest.approx(0.25)
    assert got["micro_f1"] == pytest.approx(1 / 3)
    # A model that infects nobody (sum_U P = 0) scores 0, not NaN.
    assert f1_scores([0.0], [0.0], [3]) == {"macro_f1": 0.0, "micro_f1": 0.0}


def test_rank_counts_ties_half():
    scores = torch.tensor([[0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 2.0, float("-inf")]])
    # Row 0: all tied -> 0 higher + 3 others tied / 2 = 1.5. Row 1: target 2.0, 1 higher -> 1.
    assert tie_aware_rank(scores, torch.tensor([2, 2])).tolist() == [1.5, 1.0]


META = {"n_users": 6, "vocab": 7, "terminate": 6, "pad": 7, "max_len": 5}


def test_infected_mask():
    users = torch.tensor([[2, 0, 7, 7], [1, 3, 4, 5]])  # 7 = padding
    mask = infected_mask(users, 7)
    assert mask.shape == (2, 4, 7)
    assert mask[0, 0].nonzero().flatten().tolist() == [2]
    assert mask[0, 3].nonzero().flatten().tolist() == [0, 2]  # padding infects nobody
    assert mask[1, 2].nonzero().flatten().tolist() == [1, 3, 4]
    assert not mask[..., 6].any()  # Terminate is never masked


@pytest.mark.parametrize("name", ["ndm", "lstm", "cooccurrence"])
def test_already_infected_users_get_zero_probability(name):
    torch.manual_seed(0)
    cls = get_model("ndm", name)
    model = cls(cls.make_config(), META).eval()
    if not cls.trainable:
        model.fit([{"users": torch.tensor([0, 1, 2])}, {"users": torch.tensor([2, 0])}], None)
    users = torch.tensor([[0, 1, 2, 3], [4, 7, 7, 7]])
    prob = model.predict({"users": users}).exp()  # (2, 4, 7)
    for b, j in [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]:
        seen = users[b, : j + 1]
        assert prob[b, j, seen].sum().item() == 0.0
        assert prob[b, j].sum().item() == pytest.approx(1.0, abs=1e-5)
        assert prob[b, j, 6].item() > 0  # Terminate stays possible


class ChainModel(ShardModel):
    """Deterministic: after user u comes u + 1; after user 3 comes Terminate."""

    @dataclasses.dataclass
    class Config:
        pass

    def _scores(self, last):
        scores = torch.full((last.shape[0], 7), -1e9)
        nxt = torch.where(last >= 3, torch.full_like(last, 6), last + 1)
        scores[torch.arange(last.shape[0]), nxt] = 0.0
        return scores

    def begin(self, prefix, max_new=0):
        return {"last": prefix[:, -1]}, self._scores(prefix[:, -1])

    def extend(self, state, users):
        return {"last": users}, self._scores(users)

    @staticmethod
    def reorder(state, index):
        return {k: v[index] for k, v in state.items()}


def test_simulation_probabilities_on_deterministic_model():
    model, gen = ChainModel(ChainModel.Config(), META), torch.Generator().manual_seed(0)
    # From u_0 = 0 with room for 5: 1, 2, 3 then Terminate in every simulation.
    out = simulate(model, torch.tensor([0]), 20, 5, 7, gen, early=2)
    assert (out["counts"] / 20).tolist() == [0, 1, 1, 1, 0, 0]
    assert (out["early_counts"] / 20).tolist() == [0, 1, 1, 0, 0, 0]
    assert out["sizes"].tolist() == [3] * 20
    # |G^c| = 1 caps every simulation at one new user.
    out = simulate(model, torch.tensor([1]), 20, 1, 7, gen)
    assert (out["counts"] / 20).tolist() == [0, 0, 1, 0, 0, 0]


def test_simulation_never_reinfects_and_matches_probabilities():
    # Uniform scores: from u_0 = 0 the first new user is uniform over users 1..5 and Terminate.
    class Uniform(ChainModel):
        def _scores(self, last):
            return torch.zeros(last.shape[0], 7)

    gen = torch.Generator().manual_seed(1)
    out = simulate(Uniform(Uniform.Config(), META), torch.tensor([0]), 6000, 1, 7, gen)
    p = out["counts"] / 6000
    assert p[0] == 0  # the given user is never predicted
    assert p[1:].tolist() == pytest.approx([1 / 6] * 5, abs=0.02)
    out = simulate(Uniform(Uniform.Config(), META), torch.tensor([0]), 500, 6, 7, gen)
    assert out["counts"].max() <= 500  # nobody twice in one simulation


def test_simulation_temperature_sharpens():
    # Scores ln 2 for user 1, 0 for user 2, -inf elsewhere: at T = 1 the first pick is user 1
    # with odds 2:1 (p = 2/3); at T = 0.5 the scores double, odds 4:1 (p = 4/5).
    class Two(ChainModel):
        def _scores(self, last):
            scores = torch.full((last.shape[0], 7), -1e9)
            scores[:, 1], scores[:, 2] = math.log(2.0), 0.0
            return scores

    model = Two(Two.Config(), META)
    for temperature, expected in ((1.0, 2 / 3), (0.5, 4 / 5)):
        gen = torch.Generator().manual_seed(2)
        out = simulate(model, torch.tensor([0]), 8000, 1, 7, gen, temperature=temperature)
        assert (out["counts"][1] / 8000).item() == pytest.approx(expected, abs=0.015)


def test_simulation_terminate_bias_lengthens():
    # Scores 0 for user 1 and for Terminate, -inf elsewhere: the first step picks user 1 or
    # stops with odds 1:1 (size 1 with p = 1/2). A Terminate bias of -ln 3 makes the odds
    # 3:1 (p = 3/4); at T = 0.5 the biased scores double, odds 9:1 (p = 0.9). After user 1
    # only Terminate is left, so every simulation has size 0 or 1.
    class Stop(ChainModel):
        def _scores(self, last):
            scores = torch.full((last.shape[0], 7), -1e9)
            scores[:, 1], scores[:, 6] = 0.0, 0.0
            return scores

    model = Stop(Stop.Config(), META)
    for bias, temperature, expected in ((0.0, 1.0, 0.5), (-math.log(3.0), 1.0, 0.75),
                                        (-math.log(3.0), 0.5, 0.9)):
        gen = torch.Generator().manual_seed(3)
        out = simulate(model, torch.tensor([0]), 8000, 3, 7, gen, temperature=temperature,
                       terminate_bias=bias)
        assert (out["sizes"].double().mean()).item() == pytest.approx(expected, abs=0.015)
        assert out["sizes"].max().item() == 1


def check_incremental_matches_full_forward(model):
    """Step-by-step scores (``begin`` / ``extend``) equal the full forward's on two sequences
    over users 0..5; returns the last state."""
    seq = torch.tensor([[3, 0, 5, 1, 2], [4, 2, 1, 0, 5]])
    full = model.logits(seq)  # (2, 5, 7)
    state, scores = model.begin(seq[:, :2], max_new=1)
    torch.testing.assert_close(scores, full[:, 1], rtol=1e-4, atol=1e-5)
    for j in range(2, 5):
        state, scores = model.extend(state, seq[:, j])
        torch.testing.assert_close(scores, full[:, j], rtol=1e-4, atol=1e-5)
    return state


@pytest.mark.parametrize("dense_limit", [4096, 0])
def test_ndm_incremental_matches_full_forward(dense_limit):
    torch.manual_seed(0)
    model = NDM(NDM.Config(dim=8, heads=2, f_init=1), META).eval()
    model.dense_limit = dense_limit
    state = check_incremental_matches_full_forward(model)
    state = model.reorder(state, torch.tensor([1]))
    assert state["acts"].shape[0] == 1


def _tiny_lake(tmp_path):
    # Written with delta-rs: the torch side's tests need no JVM.
    from deltalake import write_deltalake

    lake = tmp_path / "lake"
    # 6 users; train cascades repeat 0 -> 1 -> 2 and 3 -> 4 -> 5.
    rows = [(i, "train", [0, 1, 2] if i % 2 else [3, 4, 5]) for i in range(40)]
    rows += [(100, "val", [0, 1, 2]), (101, "val", [3, 4, 5])]
    rows += [(200, "test", [0, 1, 2]), (201, "test", [3, 4]), (202, "test", [5])]
    table = pa.table(
        {
            "cascade_id": pa.array([r[0] for r in rows], pa.int64()),
            "split": [r[1] for r in rows],
            "users": pa.array([r[2] for r in rows], pa.list_(pa.int64())),
            "times": pa.array([[float(t) for t in range(len(r[2]))] for r in rows],
                              pa.list_(pa.float64())),
        }
    )
    write_deltalake(str(lake / "shards" / "ndm" / "tiny"), table)
    users = pa.table({"user_id": pa.array(range(6), pa.int64()),
                      "user_name": [f"u{i}" for i in range(6)]})
    write_deltalake(str(lake / "shards" / "ndm" / "tiny_users"), users)
    return str(lake)


def test_task_batches_and_cooccurrence_scores_tiny_lake(tmp_path):
    lake = _tiny_lake(tmp_path)
    # The paper's text: Terminate is the target after each cascade's last user.
    task = NdmTask(lake, "tiny", sims=200, size_sims=50, terminate_target=True)
    assert task.meta()["n_users"] == 6 and task.meta()["max_len"] == 3
    test = task.load_split("test")
    assert [e["cascade_id"] for e in test] == [200, 201, 202] and test.split == "test"
    batch = task.collate(list(test))
    assert batch["users"].tolist() == [[0, 1, 2], [3, 4, 7], [5, 7, 7]]
    assert batch["targets"].tolist() == [[1, 2, 6], [4, 6, -100], [6, -100, -100]]
    cut = NdmTask(lake, "tiny", max_len=2, terminate_target=True).collate(list(test))
    assert cut["users"].tolist() == [[0, 1], [3, 4], [5, 7]]
    assert cut["targets"].tolist() == [[1, 2], [4, 6], [6, -100]]
    # The released code's training (the default): Terminate is never a target, so only the
    # last position of each full cascade changes; cut cascades (max_len) had none anyway.
    code = NdmTask(lake, "tiny").collate(list(test))
    assert code["targets"].tolist() == [[1, 2, -100], [4, -100, -100], [-100, -100, -100]]
    assert NdmTask(lake, "tiny").options.size_sims == 0  # no sizes from a model that never stops
    assert NdmTask(lake, "tiny", terminate_target="1").options.size_sims == 100
    with pytest.raises(ValueError, match="terminate_target"):
        NdmTask(lake, "tiny", terminate_target="2")
    cooc = get_model("ndm", "cooccurrence")
    for target, stops in (("1", 40.0), ("0", 0.0)):  # 40 training cascades, one end each
        model = cooc(cooc.Config(), task.meta())
        model.fit(task.load_split("train"), NdmTask(lake, "tiny", terminate_target=target))
        assert model.counts[:, 6].sum().item() == stops
    model = get_model("ndm", "cooccurrence")(get_model("ndm", "cooccurrence").Config(),
                                             task.meta())
    model.fit(task.load_split("train"), task)
    m = task.evaluate(model, test, torch.device("cpu"))
    # Successor counts are near-deterministic (alpha = 0.01 smoothing), so identification is
    # nearly perfect on cascades 200 and 201 (cascade 202 has nothing to identify).
    assert m["cascades_f1"] == 2 and m["macro_f1"] > 0.95 and m["micro_f1"] > 0.95
    assert m["hits@10"] == 1.0 and m["map@10"] > 0.95
    assert m["msle"] < 0.1


def test_train_ndm_end_to_end_tiny_lake(tmp_path):
    from models.train import TrainConfig, train

    lake = _tiny_lake(tmp_path)
    cfg = TrainConfig(lake=lake, task="ndm", dataset="tiny", model="ndm", epochs=15,
                      batch_size=8, lr=0.01, seed=0, out=str(tmp_path / "run"), patience=0,
                      opts={"sims": "100", "val_sims": "50", "size_sims": "20", "dim": "16",
                            "heads": "2", "terminate_target": "1"})
    res = train(cfg)
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    assert res["metrics"]["test"]["macro_f1"] > 0.5
    assert set(res["metrics"]["test"]) >= {"macro_f1", "micro_f1", "macro_f1_early",
                                           "micro_f1_early", "msle", "hits@10", "map@100"}
    # models.evaluate re-scores the best checkpoint: with the training options it repeats the
    # run's test figures (every cascade's simulations are seeded by its id); it records the
    # training options beside its own, which benchmarks/ndm_table.py groups by.
    from models.evaluate import evaluate_checkpoint

    best = str(tmp_path / "run" / "best.pt")
    again = evaluate_checkpoint(lake, best, "test", task="ndm")
    assert again["metrics"] == pytest.approx(res["metrics"]["test"])
    assert again["training"]["opts"]["heads"] == "2" and again["opts"] == {}
    assert again["training"]["lr"] == 0.01 and again["training"]["warmup"] == 0
    hot = evaluate_checkpoint(lake, best, "test", opts={"temperature": "2.0", "size_sims": "0"})
    assert hot["opts"] == {"temperature": "2.0", "size_sims": "0"} and "msle" not in hot["metrics"]
    assert hot["metrics"]["macro_f1"] < again["metrics"]["macro_f1"]
    with pytest.raises(ValueError, match="not 'infnet'"):
        evaluate_checkpoint(lake, best, "test", task="infnet")


def _trained(run: Path, lake: str) -> tuple[NdmTask, NDM]:
    from models.train import load_checkpoint

    ckpt = load_checkpoint(run / "best.pt")
    task = NdmTask(lake, "tiny")
    model = NDM(NDM.Config(**ckpt["model_config"]), task.meta())
    model.load_state_dict(ckpt["model"])
    return task, model.eval()


def test_without_terminate_target_simulations_run_to_the_truth_size(tmp_path):
    # terminate_target=0 (the authors' released code): Terminate stays in the softmax but is
    # never a target, so training pushes it down and simulations run to |G^c|. With the target
    # (the paper's text) the tiny lake's cascades (2-3 users) teach Terminate after the last.
    from models.train import TrainConfig, train

    lake = _tiny_lake(tmp_path)
    sizes, stop = {}, {}
    for target in ("1", "0"):
        cfg = TrainConfig(lake=lake, task="ndm", dataset="tiny", model="ndm", epochs=15,
                          batch_size=8, lr=0.01, seed=0, out=str(tmp_path / f"run{target}"),
                          patience=0, opts={"sims": "50", "val_sims": "20", "size_sims": "0",
                                            "dim": "16", "heads": "2",
                                            "terminate_target": target})
        train(cfg)
        task, model = _trained(tmp_path / f"run{target}", lake)
        out = simulate(model, torch.tensor([0]), 400, 4, task.n_users + 1,
                       torch.Generator().manual_seed(0))
        sizes[target] = out["sizes"].double().mean().item()
        logp = model.log_probs(torch.tensor([[0, 1, 2]]))
        stop[target] = logp[0, :, task.n_users].exp().tolist()
    # Cascade 0 -> 1 -> 2, then Terminate: the target teaches a stop after user 2 (P > 0.9).
    # Without the target, no position ever asks for Terminate, so after user 2 (a position
    # with nothing to predict) it is one of four untrained options, and the simulations go on.
    assert stop["1"][2] > 0.9 and stop["0"][2] < 0.5
    assert sizes["1"] < 2.2 and sizes["0"] > sizes["1"] + 1


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/cascades is not checked out")
def test_real_cascade_files_parse_like_the_paper():
    # Table 1 of the paper: Irvine 540 users, Memetracker 498 users / 8,304 cascades.
    for name, users, cascades in (("irvine", 540, 471), ("memetracker", 498, 8304)):
        seen, count = set(), 0
        for file in ("cascade.txt", "cascadetest.txt"):
            for line in (DATA / name / file).read_text().splitlines():
                pairs = [p.split(",") for p in line.split()]
                seen.update(p[0] for p in pairs)
                count += 1
        assert (len(seen), count) == (users, cascades)
