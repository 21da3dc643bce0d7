r"""Graph-neural baselines of the RiseNet paper (Sec. 5): GCN, GIN, GCRN and EvolveGCN.

Each reads the item's weekly Taocode diffusion graphs :math:`G_t` (``graphs``, one PyG ``Batch``
per week; node features ``user_x``, edge features tie strength and forward flag) and its weekly
series :math:`X_t` (``x_item``) with the top category, and gives one rising-star logit.

A week's graph is encoded by two graph-convolution layers and read out per sample by sum and
mean pooling, :math:`r_t = [\log(1 + \sum_i h_i); \frac{1}{n}\sum_i h_i]`; the sum is log-scaled
because a week may hold one user or thousands, and an empty week reads out as zeros. Share
edges are made undirected by default (``undirected``): influence reaches the receiver and the
sender's embedding also reflects whom it reached.

The static models (GCN, GIN) concatenate the T readouts with the flattened :math:`X` and the
category embedding into an MLP; the dynamic ones (GCRN, EvolveGCN) run a GRU over the weeks.
The loss is the weighted BCE of ``models.systems.risenet.sales.binary_loss``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GCNConv, GINConv, global_add_pool, global_mean_pool
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import scatter, to_undirected

from models.base import register_model
from models.systems.risenet.sales import (
    NUM_ITEM_FEATURES,
    BinaryBaseline,
    CategoryEmbedding,
    positive_weight,
    reset_all,
)

#: column of ``edge_attr`` holding the tie strength (``contracts.risenet.EDGE_FEATURES``)
TIE_STRENGTH = 0


def week_edges(graph: Batch, undirected: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index (2, E'), tie-strength weight (E',)) of a week; reversed copies of the share
    edges are added when ``undirected`` (weights of an edge and its reverse are summed)."""
    weight = graph.edge_attr[:, TIE_STRENGTH]
    if not undirected:
        return graph.edge_index, weight
    return to_undirected(graph.edge_index, weight, num_nodes=graph.num_nodes)


def readout(h: torch.Tensor, graph: Batch) -> torch.Tensor:
    """Per-sample [log1p(sum); mean] of node states ``h`` (N, c) >= 0 -> (B, 2c)."""
    size = graph.num_graphs
    total = global_add_pool(h, graph.batch, size=size)
    return torch.cat([torch.log1p(total), global_mean_pool(h, graph.batch, size=size)], -1)


class WeekEncoder(nn.Module):
    """Two GCNConv (tie-strength weighted) or GINConv layers over one week, then ``readout``.

    Shapes: graph with x (N, user_dim) -> (B, 2 * hidden).
    """

    def __init__(self, kind: str, user_dim: int, hidden: int, undirected: bool, dropout: float):
        super().__init__()
        self.kind, self.undirected = kind, undirected
        if kind == "gcn":
            self.convs = nn.ModuleList([GCNConv(user_dim, hidden), GCNConv(hidden, hidden)])
        elif kind == "gin":
            self.convs = nn.ModuleList(
                GINConv(nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(),
                                      nn.Linear(hidden, hidden)), train_eps=True)
                for c_in in (user_dim, hidden)
            )
        else:
            raise ValueError(f"unknown week encoder {kind!r}; expected gcn or gin")
        self.dropout = nn.Dropout(dropout)

    def forward(self, graph: Batch) -> torch.Tensor:
        edge_index, weight = week_edges(graph, self.undirected)
        h = graph.x
        for i, conv in enumerate(self.convs):
            h = conv(h, edge_index, weight) if self.kind == "gcn" else conv(h, edge_index)
            h = F.relu(h)
            h = self.dropout(h) if i + 1 < len(self.convs) else h
        return readout(h, graph)


def head(c_in: int, hidden: int, dropout: float) -> nn.Sequential:
    """The MLP from a sample's representation to its logit."""
    return nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, 1))


@dataclasses.dataclass
class GraphConfig:
    #: node state and MLP / GRU size
    hidden: int = 64
    #: size of the top-category embedding
    category_dim: int = 8
    #: add the reverse of every share edge before the convolutions
    undirected: bool = True
    dropout: float = 0.2
    #: BCE weight of the positive class; 0 = (1 - pos_rate) / pos_rate from the task meta
    pos_weight: float = 0.0


class StaticGraphBaseline(BinaryBaseline):
    """Per-week encoder readouts of all T weeks, the flattened X and the category -> MLP."""

    kind = ""

    def __init__(self, config: GraphConfig, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.pos_weight = positive_weight(config.pos_weight, meta)
        steps, h = int(meta["weeks"]), config.hidden
        self.encoder = WeekEncoder(self.kind, int(meta.get("user_dim", 7)), h,
                                   config.undirected, config.dropout)
        self.category = CategoryEmbedding(int(meta.get("categories", 0)), config.category_dim)
        width = steps * (2 * h + NUM_ITEM_FEATURES) + config.category_dim
        self.head = head(width, h, config.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_all(self)

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        weeks = [self.encoder(g) for g in batch["graphs"]]  # T x (B, 2h)
        x_item = batch["x_item"].flatten(1)  # (B, T * 4)
        rep = torch.cat([*weeks, x_item, self.category(batch["category"])], -1)
        return self.head(rep).squeeze(-1)


@register_model("risenet", "gcn")
class GCN(StaticGraphBaseline):
    r"""GCN (Kipf & Welling, ICLR 2017) as a static graph classifier.

    The original layer is :math:`H' = \sigma(\hat D^{-1/2} \hat A \hat D^{-1/2} H W)`,
    :math:`\hat A = A + I`. Here two layers (``GCNConv``) run on each week's diffusion graph with
    the tie strength as edge weight; the weeks' readouts are concatenated (no recurrence:
    the model has no notion of dynamics beyond the fixed week order), with X and the category,
    into an MLP.

    Args (``Config``): hidden (64), category_dim (8), undirected (True), dropout (0.2),
    pos_weight (0.0 = neg/pos of ``meta["pos_rate"]``).

    Shapes: batch as in ``models.systems.risenet.task``; predict -> (B,), loss -> scalar.
    """

    kind = "gcn"

    @dataclasses.dataclass
    class Config(GraphConfig):
        pass


@register_model("risenet", "gin")
class GIN(StaticGraphBaseline):
    r"""GIN (Xu et al., ICLR 2019) as a static graph classifier.

    The original layer is :math:`h_v' = \mathrm{MLP}((1 + \epsilon) h_v + \sum_{u \in N(v)}
    h_u)` with a learned :math:`\epsilon` and a sum readout (injective on multisets). Here two
    such layers (``GINConv``, two-layer MLPs, no batch norm since weeks may be empty) run on
    each week's graph, unweighted; readouts as GCN's.

    Args (``Config``): hidden (64), category_dim (8), undirected (True), dropout (0.2),
    pos_weight (0.0 = neg/pos of ``meta["pos_rate"]``).

    Shapes: batch as in ``models.systems.risenet.task``; predict -> (B,), loss -> scalar.
    """

    kind = "gin"

    @dataclasses.dataclass
    class Config(GraphConfig):
        pass


@register_model("risenet", "gcrn")
class GCRN(BinaryBaseline):
    r"""GCRN (Seo et al., ICONIP 2018), its first model: a graph convolution encodes each step's
    graph and an RNN models the sequence of encodings.

    The original runs an LSTM per node over a fixed node set. The users of an item's diffusion
    differ week to week, so here the recurrence runs over each week's pooled graph state:
    :math:`r_t` from a two-layer tie-weighted GCN, then :math:`s_t = \mathrm{GRU}(s_{t-1},
    [r_t; X_t; e_c])` and the logit from :math:`s_T`.

    Args (``Config``): hidden (64), category_dim (8), undirected (True), dropout (0.2),
    pos_weight (0.0 = neg/pos of ``meta["pos_rate"]``).

    Shapes: batch as in ``models.systems.risenet.task``; predict -> (B,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config(GraphConfig):
        pass

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.pos_weight = positive_weight(config.pos_weight, meta)
        h = config.hidden
        self.encoder = WeekEncoder("gcn", int(meta.get("user_dim", 7)), h, config.undirected,
                                   config.dropout)
        self.category = CategoryEmbedding(int(meta.get("categories", 0)), config.category_dim)
        self.gru = nn.GRU(2 * h + NUM_ITEM_FEATURES + config.category_dim, h, batch_first=True)
        self.head = head(h, h, config.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_all(self)

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        readouts = torch.stack([self.encoder(g) for g in batch["graphs"]], 1)  # (B, T, 2h)
        x_item = batch["x_item"]  # (B, T, 4)
        cat = self.category(batch["category"]).unsqueeze(1).expand(-1, x_item.shape[1], -1)
        _, state = self.gru(torch.cat([readouts, x_item, cat], -1))
        return self.head(state.squeeze(0)).squeeze(-1)


class MatrixGRU(nn.Module):
    r"""EvolveGCN-O's weight evolution: :math:`W_t = \mathrm{GRU}(W_{t-1}, W_{t-1})`, the GRU run
    column-wise, each column of the (in, out) weight matrix a hidden state of size ``in``.

    Shapes: (in, out) -> (in, out).
    """

    def __init__(self, rows: int):
        super().__init__()
        self.cell = nn.GRUCell(rows, rows)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        columns = weight.T  # (out, in): one hidden state per output column
        return self.cell(columns, columns).T


def gcn_propagate(h: torch.Tensor, edge_index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r""":math:`\hat D^{-1/2} \hat A \hat D^{-1/2} h` with self-loops, messages sender -> receiver.

    Shapes: h (N, c), edge_index (2, E), weight (E,) -> (N, c).
    """
    n = h.shape[0]
    edge_index, norm = gcn_norm(edge_index, weight, n, add_self_loops=True)
    src, dst = edge_index
    return scatter(h[src] * norm.unsqueeze(-1), dst, 0, dim_size=n, reduce="sum")


@register_model("risenet", "evolvegcn")
class EvolveGCN(BinaryBaseline):
    r"""EvolveGCN-O (Pareja et al., AAAI 2020): a GCN whose weights are evolved over time by an
    RNN rather than node states, so it copes with node sets that change between steps.

    The original: per layer l, :math:`W^{(l)}_t = \mathrm{GRU}(W^{(l)}_{t-1})` (the weights as
    the recurrent state) and :math:`H^{(l+1)}_t = \sigma(\hat A_t H^{(l)}_t
    W^{(l)}_t)`. Here the steps are the window's weeks (the same evolution for every item, from
    learned :math:`W^{(l)}_0`), two layers over each week's tie-weighted diffusion graph; the
    pooled readouts with :math:`X_t` and the category go through a GRU over the weeks to the
    logit.

    Args (``Config``): hidden (64), category_dim (8), undirected (True), dropout (0.2),
    pos_weight (0.0 = neg/pos of ``meta["pos_rate"]``).

    Shapes: batch as in ``models.systems.risenet.task``; predict -> (B,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config(GraphConfig):
        pass

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.pos_weight = positive_weight(config.pos_weight, meta)
        h, user_dim = config.hidden, int(meta.get("user_dim", 7))
        dims = [(user_dim, h), (h, h)]
        self.initial = nn.ParameterList(nn.Parameter(torch.empty(i, o)) for i, o in dims)
        self.evolve = nn.ModuleList(MatrixGRU(i) for i, _ in dims)
        self.category = CategoryEmbedding(int(meta.get("categories", 0)), config.category_dim)
        self.gru = nn.GRU(2 * h + NUM_ITEM_FEATURES + config.category_dim, h, batch_first=True)
        self.head = head(h, h, config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_all(self)
        for weight in self.initial:
            nn.init.xavier_uniform_(weight)

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        weights = list(self.initial)
        readouts = []
        for graph in batch["graphs"]:
            weights = [evolve(w) for evolve, w in zip(self.evolve, weights, strict=True)]
            edge_index, tie = week_edges(graph, self.config.undirected)
            h = graph.x
            for i, w in enumerate(weights):
                h = F.relu(gcn_propagate(h @ w, edge_index, tie))  # (N, hidden)
                h = self.dropout(h) if i + 1 < len(weights) else h
            readouts.append(readout(h, graph))
        x_item = batch["x_item"]  # (B, T, 4)
        cat = self.category(batch["category"]).unsqueeze(1).expand(-1, x_item.shape[1], -1)
        _, state = self.gru(torch.cat([torch.stack(readouts, 1), x_item, cat], -1))
        return self.head(state.squeeze(0)).squeeze(-1)
