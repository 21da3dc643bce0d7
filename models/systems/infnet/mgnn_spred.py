r"""MGNN-SPred: multi-relational GNN for session-based prediction (Wang et al., WWW 2020).

The paper's idea: one global item graph whose edges are the item transitions of the sessions,
one relation per behaviour (target: purchase; auxiliary: click) and direction; an R-GCN over it
gives every item a representation that mixes both behaviours. A session's target-behaviour and
auxiliary-behaviour sequences are pooled separately from those representations, and a gate
fuses them, :math:`\alpha = \sigma(W_g [p; a] + b_g)`, :math:`s = \alpha p + (1 - \alpha) a`;
an item scores :math:`s^\top v_i`.

Our adaptation: the global graph comes from the train split's receiver histories before the
first prediction day: purchase relations (consecutive purchases) and share relations
(consecutive received or sent Taocodes), each forward and backward (4 relations, ``RGCNConv``,
mean aggregation), each node's ``neighbours`` strongest in-neighbours per relation by
transition count. Each batch convolves only the sub-graph around its items. The receiver's
purchase sequence is p, its share sequence a (mean pooling); the query item is its
representation plus its PI / category one-hot; binary cross-entropy on the query label.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import RGCNConv

from contracts.infnet import KIND_PURCHASE, KIND_RECEIVED, KIND_SENT
from models.base import register_model
from models.systems.infnet.interactions import TrainInteractions, top_neighbours
from models.systems.infnet.recsys import (
    IdIndex,
    ItemEncoder,
    LogitRecommender,
    history_mask,
    masked_mean,
    train_interactions,
)

#: relation codes of the global item graph
PURCHASE_NEXT, PURCHASE_PREV, SHARE_NEXT, SHARE_PREV = 0, 1, 2, 3


def relation_edges(inter: TrainInteractions, items: IdIndex, k: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(2, E) src -> dst item rows and (E,) relation codes of the global item graph."""
    edges, types = [], []
    for kinds, forward, backward in (((KIND_PURCHASE,), PURCHASE_NEXT, PURCHASE_PREV),
                                     ((KIND_RECEIVED, KIND_SENT), SHARE_NEXT, SHARE_PREV)):
        a, b = inter.transitions(kinds)
        a = items(torch.as_tensor(a)).numpy()
        b = items(torch.as_tensor(b)).numpy()
        for rel, (src, dst) in ((forward, (a, b)), (backward, (b, a))):
            keep = src != dst
            pairs, counts = np.unique(np.stack([src[keep], dst[keep]]).reshape(2, -1), axis=1,
                                      return_counts=True)
            index, _ = top_neighbours(pairs[0], pairs[1], counts, items.size, k)
            dst_rows, slots = np.nonzero(index)
            edges.append(np.stack([index[dst_rows, slots], dst_rows]))
            types.append(np.full(len(dst_rows), rel))
    return np.concatenate(edges, axis=1).astype(np.int64), np.concatenate(types).astype(np.int64)


@register_model("infnet", "mgnn_spred")
class MGNNSPred(LogitRecommender):
    r"""Args (``Config``): hidden c (64); neighbours (12) kept per item and relation.

    Buffers: ``graph_edges`` (2, E), ``graph_types`` (E,) the global item graph.

    Shapes: batch as in ``models.systems.infnet.task``; predict -> (Q,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        hidden: int = 64
        neighbours: int = 12

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config.hidden
        inter = train_interactions(meta)
        self.items = IdIndex(inter.items())
        edges, types = relation_edges(inter, self.items, config.neighbours)
        self.register_buffer("graph_edges", torch.as_tensor(edges))
        self.register_buffer("graph_types", torch.as_tensor(types))
        self.item = ItemEncoder(self.items.size, c, int(meta["item_dim"]))
        self.rgcn = RGCNConv(c, c, num_relations=4, aggr="mean")
        self.gate = nn.Linear(2 * c, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.item.reset_parameters()
        self.rgcn.reset_parameters()
        self.gate.reset_parameters()
        self.reset_bias()

    def represent(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """R-GCN representations of the item ``rows`` (any shape): (nodes (M,), states (M, c))
        and where each requested row sits among the nodes (same shape as ``rows``)."""
        centre = torch.unique(rows)
        src, dst = self.graph_edges
        into = torch.isin(dst, centre)
        nodes = torch.unique(torch.cat([centre, src[into]]))  # sorted
        local = torch.searchsorted(nodes, self.graph_edges[:, into])
        x = self.item.embedding(nodes)  # (M, c)
        h = x + F.relu(self.rgcn(x, local, self.graph_types[into]))  # residual R-GCN layer
        return h, torch.searchsorted(nodes, rows)

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        mask = history_mask(batch)
        hist = self.items(batch["hist_item"])  # (Q, L), 0 in the padding
        target = self.items(batch["item_id"])  # (Q,)
        h, where = self.represent(torch.cat([hist.flatten(), target]))
        seq = h[where[: hist.numel()]].view(*hist.shape, -1)  # (Q, L, c)
        bought = mask & (batch["hist_kind"] == KIND_PURCHASE)
        p = masked_mean(seq, bought)  # purchase sequence
        a = masked_mean(seq, mask & ~bought)  # share sequence
        alpha = torch.sigmoid(self.gate(torch.cat([p, a], -1)))  # (Q, 1) gated fusion
        s = alpha * p + (1 - alpha) * a
        v_p = h[where[hist.numel():]] + self.item.attr(batch["item_x"])  # (Q, c)
        return (s * v_p).sum(-1) + self.bias

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(hidden={self.config.hidden}, "
                f"items={self.items.size - 1}, edges={self.graph_edges.size(1)})")
