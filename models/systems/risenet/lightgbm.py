r"""LightGBM on weekly statistics: the "concatenate the item's history and the diffusion
statistics at each time step" reading of rising-star prediction that the RiseNet paper sets
against its graph model (Sec. 1), with gradient-boosted trees
:math:`y' = \sigma(\sum_m f_m(\phi(i)))`.

:math:`\phi(i)` holds, for each of the T observed weeks, :math:`X_t` (log1p of price, sales,
records and scale) and the week's diffusion-graph summary (log1p of users, share edges, hub users
and forward edges; mean tie strength), plus the item's top category (a categorical feature).
``fit`` computes it from the examples' numpy arrays; ``predict`` computes the same numbers from
a collated batch, so the trainer's scoring path needs nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.utils import scatter

from contracts import risenet as contract
from models.base import Task, register_model
from models.baselines import LightGBMConfig, SklearnBaseline, lightgbm_classifier

HUB = contract.USER_FEATURES.index("hub")
TIE_STRENGTH = contract.EDGE_FEATURES.index("tie_strength")
FORWARD = contract.EDGE_FEATURES.index("forward")
#: per-week graph summaries, in feature order
GRAPH_STATS = ("users", "edges", "hubs", "forwards", "mean_tie_strength")


def feature_names(weeks: int) -> list[str]:
    """Names of the columns of ``example_features`` / ``batch_features``."""
    names = []
    for t in range(weeks):
        names += [f"{f}_w{t}" for f in (*contract.ITEM_FEATURES, *GRAPH_STATS)]
    return [*names, "category"]


def _assemble(x_item: np.ndarray, stats: np.ndarray, category: np.ndarray) -> np.ndarray:
    """x_item (B, T, 4) log1p'ed, stats (B, T, 5) raw counts and mean tie, category (B,) ->
    (B, T * 9 + 1) float64."""
    stats = stats.astype(np.float64).copy()
    stats[..., :4] = np.log1p(stats[..., :4])  # counts; the mean tie strength is log1p already
    weekly = np.concatenate([x_item.astype(np.float64), stats], -1)  # (B, T, 9)
    return np.concatenate([weekly.reshape(len(weekly), -1), category[:, None]], 1)


def example_features(examples: Sequence[Any]) -> np.ndarray:
    """Features of ``RiseNetExample``s straight from their numpy arrays (no PyG batches)."""
    if not examples:
        return np.zeros((0, 0))
    steps = len(examples[0].users)
    stats = np.zeros((len(examples), steps, len(GRAPH_STATS)))
    for i, ex in enumerate(examples):
        for t in range(steps):
            edge_x = ex.edge_x[t].reshape(-1, len(contract.EDGE_FEATURES))
            user_x = ex.user_x[t].reshape(-1, len(contract.USER_FEATURES))
            n_edges = len(edge_x)
            stats[i, t] = (
                len(ex.users[t]),
                n_edges,
                user_x[:, HUB].sum(),
                edge_x[:, FORWARD].sum(),
                edge_x[:, TIE_STRENGTH].astype(np.float64).sum() / max(n_edges, 1),
            )
    x_item = np.log1p(np.stack([ex.item_x for ex in examples]).astype(np.float32))
    category = np.array([ex.category for ex in examples], dtype=np.float64)
    return _assemble(x_item, stats, category)


@torch.no_grad()
def batch_features(batch: dict[str, Any]) -> np.ndarray:
    """The same features as ``example_features``, from a collated batch's graphs."""
    weeks = []
    for g in batch["graphs"]:
        b = g.num_graphs
        edge_sample = g.batch[g.edge_index[0]]  # (E,)
        edges = scatter(torch.ones_like(edge_sample, dtype=torch.float64), edge_sample, 0,
                        dim_size=b, reduce="sum")
        ties = scatter(g.edge_attr[:, TIE_STRENGTH].double(), edge_sample, 0, dim_size=b,
                       reduce="sum")
        weeks.append(torch.stack([
            (g.ptr[1:] - g.ptr[:-1]).double(),
            edges,
            scatter(g.x[:, HUB].double(), g.batch, 0, dim_size=b, reduce="sum"),
            scatter(g.edge_attr[:, FORWARD].double(), edge_sample, 0, dim_size=b, reduce="sum"),
            ties / edges.clamp(min=1),
        ], -1))  # (B, 5)
    stats = torch.stack(weeks, 1).cpu().numpy()  # (B, T, 5)
    return _assemble(batch["x_item"].cpu().numpy(), stats,
                     batch["category"].cpu().numpy().astype(np.float64))


@register_model("risenet", "lightgbm")
class LightGBMBaseline(SklearnBaseline):
    """Args (``Config``): n_estimators (200), learning_rate (0.05), num_leaves (31),
    min_child_samples (20), scale_pos_weight (0.0 = LightGBM's ``is_unbalance``, i.e.
    neg/pos of the training split), seed (0).

    Shapes: predict(batch) -> (B,) probabilities.
    """

    @dataclasses.dataclass
    class Config(LightGBMConfig):
        #: weight of the positive class; 0 lets LightGBM balance the classes (is_unbalance)
        scale_pos_weight: float = 0.0

    def make_estimator(self):
        c = self.config
        balance = (
            {"scale_pos_weight": c.scale_pos_weight} if c.scale_pos_weight > 0
            else {"is_unbalance": True}
        )
        return lightgbm_classifier(c, **balance)

    def train_features(self, examples: Sequence[Any], task: Task):
        return example_features(examples), np.array([ex.label for ex in examples],
                                                    dtype=np.int64)

    def batch_features(self, batch: dict[str, Any]) -> np.ndarray:
        return batch_features(batch)

    def fit_kwargs(self, x: np.ndarray) -> dict[str, Any]:
        weeks = (x.shape[1] - 1) // (len(contract.ITEM_FEATURES) + len(GRAPH_STATS))
        return {"feature_name": feature_names(weeks), "categorical_feature": [x.shape[1] - 1]}
