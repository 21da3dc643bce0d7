"""DM-GNN's baselines: TGAT, a TGN-style memory model, static GCN / GAT / GraphSAGE on the
training-period snapshot, and LightGBM on windowed spend features for the tiers.

* ``tgat``: DM-GNN without the time decay (``decay=False``), the paper's best baseline.
* ``tgn``: TGN's recipe, a GRU memory per node and one temporal attention layer over the
  neighbours' memories. The trainer shuffles examples, so the memory is not kept across
  batches: a node's memory at time t is the GRU run, oldest first, over its last
  ``num_neighbors`` interactions before t (messages: the other node's input, the edge type and
  direction, the time since the previous interaction), which is TGN's memory truncated to that
  history. A neighbour's memory is built the same way at its interaction's time, from the
  batch's next level (with ``layers=1`` neighbours have inputs only). PyG's ``TGNMemory`` needs
  the stream replayed in order and is not used.
* ``gcn``, ``gat``, ``sage``: two PyG convolutions over the static, undirected graph of the
  training edges (all types in one homogeneous graph; GAT also sees an edge-type embedding),
  node inputs a learned id embedding; a query's embedding adds its attribute features at the
  query time, so tiers can follow the windows.
* ``lightgbm``: tiers only: a multi-class booster on the tier queries' attribute summaries
  (``graph.FEATURE_NAMES``: counts and amounts per type over the window and all time, and the
  interactions so far), all taken strictly before the query time.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from contracts import dmgnn as contract
from models.base import Task, register_model
from models.baselines import LightGBMConfig, SklearnBaseline, lightgbm_classifier
from models.systems.dmgnn.dmgnn import DMGNN, TemporalAttention, TimeEncoder, TwoTaskModel, mlp
from models.systems.dmgnn.graph import FEATURE_NAMES, NUM_EDGE_CODES, NUM_FEATURES

CHUNK = 1024


@register_model("dmgnn", "tgat")
class TGAT(DMGNN):
    """TGAT: the DM-GNN encoder and heads without the time decay (``Config`` as DM-GNN's)."""

    @dataclasses.dataclass
    class Config(DMGNN.Config):
        decay: bool = False


def reset_children(module: nn.Module) -> None:
    for child in module.modules():
        if child is not module and hasattr(child, "reset_parameters"):
            child.reset_parameters()


@register_model("dmgnn", "tgn")
class TGNMemory(TwoTaskModel):
    """TGN-style: a GRU memory over each node's recent interactions and one temporal attention
    layer over the neighbours' memories (see the module docstring).

    Args (``Config``): dim (64), heads (2), edge_dim (16), dropout (0.1), lambda_t (1.0).

    Shapes: as DM-GNN's (``embed`` -> (Q, dim)).
    """

    @dataclasses.dataclass
    class Config:
        dim: int = 64
        heads: int = 2
        edge_dim: int = 16
        dropout: float = 0.1
        lambda_t: float = 1.0

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config
        self.k, self.levels = int(meta.get("num_neighbors", 10)), int(meta.get("layers", 2))
        self.norm = nn.LayerNorm(NUM_FEATURES)
        self.features = nn.Linear(NUM_FEATURES, c.dim)
        self.ids = nn.Embedding(int(meta["num_nodes"]), c.dim)
        self.edges = nn.Embedding(NUM_EDGE_CODES, c.edge_dim, padding_idx=0)
        self.time = TimeEncoder(c.dim)
        self.gru = nn.GRUCell(2 * c.dim + c.edge_dim, c.dim)
        self.attention = TemporalAttention(c.dim, c.edge_dim, c.heads, c.dropout)
        self.link_head = mlp(2 * c.dim, c.dim, 1, c.dropout)
        self.tier_head = mlp(c.dim, c.dim, contract.NUM_TIERS, c.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def inputs(self, batch: dict[str, Any], level: int) -> torch.Tensor:
        """(Q, k^level, dim): projected features plus the id embedding."""
        x = self.features(self.norm(batch[f"x_{level}"])) + self.ids(batch[f"node_{level}"])
        return x[:, None] if level == 0 else x

    def memory(self, batch: dict[str, Any], level: int, inputs: torch.Tensor) -> torch.Tensor:
        """Memory of the level's nodes from their interactions at ``level + 1``: (Q, k^level,
        dim). ``inputs``: the next level's node inputs (Q, k^(level+1), dim)."""
        q, width = batch[f"mask_{level + 1}"].shape
        rows = q * width // self.k
        mask = batch[f"mask_{level + 1}"].reshape(rows, self.k)
        dt = batch[f"dt_{level + 1}"].reshape(rows, self.k)
        gap = torch.cat([dt[:, :1], dt[:, :-1] - dt[:, 1:]], 1).clamp_min(0)  # since previous
        messages = torch.cat([inputs.reshape(rows, self.k, -1),
                              self.edges(batch[f"code_{level + 1}"]).reshape(rows, self.k, -1),
                              self.time(gap)], -1)
        state = inputs.new_zeros(rows, self.config.dim)
        for step in range(self.k):  # oldest first; padding (left) leaves the state as it is
            new = self.gru(messages[:, step], state)
            state = torch.where(mask[:, step, None], new, state)
        return state.reshape(q, width // self.k, -1)

    def embed(self, batch: dict[str, Any]) -> torch.Tensor:
        x = [self.inputs(batch, i) for i in range(min(self.levels, 2) + 1)]
        h0 = x[0] + self.memory(batch, 0, x[1])
        h1 = x[1] + (self.memory(batch, 1, x[2]) if self.levels >= 2 else 0)
        h1 = h1 * batch["mask_1"][..., None]
        dt = batch["dt_1"]
        phi_zero = self.time(torch.zeros(1, device=dt.device))
        return self.attention(h0[:, 0], h1, self.edges(batch["code_1"]), phi_zero, self.time(dt),
                              dt, batch["mask_1"], 0.0)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(dim={self.config.dim}, k={self.k})"


class StaticGNN(TwoTaskModel):
    """Two PyG convolutions (``conv`` of the subclass) over the training snapshot.

    Args (``Config``): dim (64), dropout (0.1), lambda_t (1.0).

    Shapes: the whole snapshot is embedded each forward pass, (num_nodes, dim); ``embed`` picks
    the queries' rows and adds their features at query time -> (Q, dim).
    """

    conv = ""

    @dataclasses.dataclass
    class Config:
        dim: int = 64
        dropout: float = 0.1
        lambda_t: float = 1.0

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        from torch_geometric.nn import GATConv, GCNConv, SAGEConv

        c, n = config, int(meta["num_nodes"])
        src = torch.as_tensor(np.asarray(meta.get("train_src", []), np.int64))
        dst = torch.as_tensor(np.asarray(meta.get("train_dst", []), np.int64))
        kind = torch.as_tensor(np.asarray(meta.get("train_type", []), np.int64))
        # undirected, as the snapshot's GCN / GAT / SAGE read it; rebuilt from meta on load
        self.register_buffer("edge_index", torch.stack([torch.cat([src, dst]),
                                                        torch.cat([dst, src])]), persistent=False)
        self.register_buffer("edge_type", torch.cat([kind, kind]), persistent=False)
        self.ids = nn.Embedding(n, c.dim)
        self.norm = nn.LayerNorm(NUM_FEATURES)
        self.features = nn.Linear(NUM_FEATURES, c.dim)
        self.type_embedding = nn.Embedding(len(contract.EDGE_TYPES), c.dim)
        make = {"gcn": lambda: GCNConv(c.dim, c.dim),
                "gat": lambda: GATConv(c.dim, c.dim, heads=1, edge_dim=c.dim),
                "sage": lambda: SAGEConv(c.dim, c.dim)}[self.conv]
        self.convs = nn.ModuleList([make(), make()])
        self.dropout = nn.Dropout(c.dropout)
        self.link_head = mlp(2 * c.dim, c.dim, 1, c.dropout)
        self.tier_head = mlp(c.dim, c.dim, contract.NUM_TIERS, c.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def snapshot(self) -> torch.Tensor:
        """(num_nodes, dim) embeddings of the training snapshot."""
        h = self.ids.weight
        extra = {"edge_attr": self.type_embedding(self.edge_type)} if self.conv == "gat" else {}
        for i, conv in enumerate(self.convs):
            h = conv(h, self.edge_index, **extra)
            if i < len(self.convs) - 1:
                h = self.dropout(torch.relu(h))
        return h

    def embed(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.snapshot()[batch["node_0"]] + self.features(self.norm(batch["x_0"]))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(conv={self.conv}, dim={self.config.dim})"


@register_model("dmgnn", "gcn")
class StaticGCN(StaticGNN):
    """GCN on the training snapshot."""

    conv = "gcn"


@register_model("dmgnn", "gat")
class StaticGAT(StaticGNN):
    """GAT (with edge-type embeddings) on the training snapshot."""

    conv = "gat"


@register_model("dmgnn", "sage")
class StaticSAGE(StaticGNN):
    """GraphSAGE on the training snapshot."""

    conv = "sage"


@register_model("dmgnn", "lightgbm")
class TierLightGBM(SklearnBaseline):
    """Tiers from the tier queries' attribute summaries (``graph.FEATURE_NAMES``), one
    multi-class LightGBM booster. Scores tiers only.

    Args (``Config``): n_estimators (200), learning_rate (0.05), num_leaves (31),
    min_child_samples (20), seed (0).

    Shapes: predict(batch) -> {tier: (B_t, 5)} class probabilities.
    """

    @dataclasses.dataclass
    class Config(LightGBMConfig):
        pass

    def make_estimator(self):
        return lightgbm_classifier(self.config)

    def batch_features(self, batch: dict[str, Any]) -> np.ndarray:
        x = batch["x_0"].cpu().numpy()
        return x[len(x) - batch["n_tier"]:].astype(np.float64)

    def train_features(self, examples: Sequence[Any], task: Task
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the tier examples of ``examples``, collated ``CHUNK`` at a time."""
        tiers = [ex for ex in examples if ex.index >= ex.store.n_link]
        xs, ys = [np.zeros((0, NUM_FEATURES))], [np.zeros(0, np.int64)]
        for start in range(0, len(tiers), CHUNK):
            batch = task.collate(tiers[start:start + CHUNK])
            xs.append(self.batch_features(batch))
            ys.append(batch["tier"].numpy())
        return np.concatenate(xs), np.concatenate(ys)

    def fit_kwargs(self, x: np.ndarray) -> dict[str, Any]:
        return {"feature_name": list(FEATURE_NAMES)}

    def fit(self, examples: Sequence[Any], task: Task) -> None:
        if list(self.meta.get("heads", ["tier"])) != ["tier"]:
            raise ValueError("lightgbm scores tiers only: train it with --opt objective=tier")
        super().fit(examples, task)

    def predict(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.estimator is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        x = self.batch_features(batch)
        proba = np.zeros((len(x), contract.NUM_TIERS))
        if len(x):
            with warnings.catch_warnings():  # LightGBM's sklearn wrapper warns on numpy input
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                proba[:, self.estimator.classes_] = self.estimator.predict_proba(x)
        return {"tier": torch.from_numpy(proba).float()}
