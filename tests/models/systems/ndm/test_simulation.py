"""The simulation protocol: every NDM-task model implements ``Simulable``; others are refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.base import ShardModel, get_model
from models.systems.ndm.simulation import Simulable, reorder_state, require_simulable, simulate
from models.systems.ndm.task import NdmTask

META = {"n_users": 6, "vocab": 7, "terminate": 6, "pad": 7, "max_len": 5}


@pytest.mark.parametrize("name", ["ndm", "lstm", "cooccurrence"])
def test_every_ndm_model_implements_the_protocol(name):
    cls = get_model("ndm", name)
    assert issubclass(cls, Simulable)
    model = cls(cls.make_config(), META).eval()
    assert isinstance(model, Simulable)
    assert require_simulable(model) is model
    # begin / extend / reorder agree in shape: S simulations, V = |U| + 1 scores each.
    state, scores = model.begin(torch.tensor([[0, 1], [2, 3], [4, 5]]), max_new=2)
    assert scores.shape == (3, 7)
    state = model.reorder(state, torch.tensor([2, 0]))
    state, scores = model.extend(state, torch.tensor([1, 4]))
    assert scores.shape == (2, 7)


class Forgetful(ShardModel):
    """Scores the next user but cannot drop finished simulations: no ``reorder``."""

    @dataclasses.dataclass
    class Config:
        pass

    def begin(self, prefix, max_new=0):
        return {}, torch.zeros(prefix.shape[0], 7)

    def extend(self, state, users):
        return state, torch.zeros(users.shape[0], 7)


def test_a_model_missing_a_method_is_refused_with_its_name():
    model = Forgetful(Forgetful.Config(), META)
    assert not isinstance(model, Simulable) and not issubclass(Forgetful, Simulable)
    expected = "Forgetful cannot be simulated: it lacks reorder.*begin.*extend.*reorder"
    with pytest.raises(TypeError, match=expected):
        require_simulable(model)
    with pytest.raises(TypeError, match=expected):
        simulate(model, torch.tensor([0]), 10, 3, 7, torch.Generator().manual_seed(0))
    # The task refuses it before scoring anything (nor reading the lake).
    task = NdmTask("/nonexistent/lake", "tiny")
    with pytest.raises(TypeError, match=expected):
        task.evaluate(model, [], torch.device("cpu"))


def test_a_model_with_no_simulation_methods_lists_them_all():
    class Ranker(ShardModel):
        pass

    with pytest.raises(TypeError, match="Ranker cannot be simulated: it lacks begin, extend, "
                                        "reorder"):
        require_simulable(Ranker(ShardModel.Config(), META))


def test_reorder_state_indexes_tensors_and_keeps_counters():
    state = {"h": torch.tensor([[0.0], [1.0], [2.0]]), "last": torch.tensor([5, 6, 7]), "t": 4}
    out = reorder_state(state, torch.tensor([2, 0]))
    assert out["h"].tolist() == [[2.0], [0.0]]
    assert out["last"].tolist() == [7, 5]
    assert out["t"] == 4
