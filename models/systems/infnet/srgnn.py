r"""SR-GNN: session-based recommendation with graph neural networks (Wu et al., AAAI 2019).

The paper's idea: a session's clicks form a directed graph over its distinct items; a gated
GNN propagates along the transitions, Eq. (1)-(5); the session is the soft attention over its
item states anchored on the last click, :math:`\alpha_i = q^\top \sigma(W_1 v_n + W_2 v_i + c)`,
:math:`s_g = \sum_i \alpha_i v_i`, Eq. (6), fused with the last one, :math:`s_h = W_3 [s_l;
s_g]`, Eq. (7), and an item scores :math:`s_h^\top v_i`, Eq. (8).

Our adaptation (InfNet Sec. 5.1): the session is the receiver's own records in the weeks
before the query, and a node is a distinct (item, kind) so that a shared, a received and a
bought copy of one item stay apart; its input state is the item's embedding plus the kind's.
PyG's ``GatedGraphConv`` has one adjacency, so the in- and out-transitions of Eq. (1) enter as
edges in both directions with mean aggregation. The candidate is the query item encoded with
its PI / category one-hot, and :math:`\sigma(s_h^\top v_p + b)` is trained by binary
cross-entropy on the query label.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch_geometric.nn import GatedGraphConv

from contracts.infnet import HISTORY_KINDS
from models.base import register_model
from models.systems.infnet.recsys import (
    IdIndex,
    ItemEncoder,
    LogitRecommender,
    history_mask,
    last_valid,
    positions,
    session_graph,
    train_interactions,
)


@register_model("infnet", "srgnn")
class SRGNN(LogitRecommender):
    r"""Args (``Config``): hidden c (64); steps (1) gated propagation steps.

    Shapes: batch as in ``models.systems.infnet.task``; predict -> (Q,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        hidden: int = 64
        steps: int = 1

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config.hidden
        self.items = IdIndex(train_interactions(meta).items())
        self.item = ItemEncoder(self.items.size, c, int(meta["item_dim"]))
        self.kind = nn.Embedding(len(HISTORY_KINDS), c)
        self.ggnn = GatedGraphConv(c, num_layers=config.steps, aggr="mean")
        self.w1 = nn.Linear(c, c, bias=False)
        self.w2 = nn.Linear(c, c)  # its bias is c of Eq. (6)
        self.q = nn.Linear(c, 1, bias=False)
        self.w3 = nn.Linear(2 * c, c)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.item.reset_parameters()
        nn.init.normal_(self.kind.weight, std=0.1)
        for module in (self.ggnn, self.w1, self.w2, self.q, self.w3):
            module.reset_parameters()
        self.reset_bias()

    def session(self, batch: dict[str, Any]) -> torch.Tensor:
        """s_h (Q, c), Eq. (1)-(7)."""
        mask = history_mask(batch)
        kinds = len(HISTORY_KINDS)
        key = self.items(batch["hist_item"]) * kinds + batch["hist_kind"]  # (Q, L)
        g = session_graph(key, mask)
        v0 = self.item.embedding(g.node_key // kinds) + self.kind(g.node_key % kinds)  # (S, c)
        v = self.ggnn(v0, g.edge_index)  # Eq. (1)-(5)
        seq = positions(v, g, mask)  # (Q, L, c)
        s_l = last_valid(seq, batch["hist_len"])  # (Q, c)
        alpha = self.q(torch.sigmoid(self.w1(s_l).unsqueeze(1) + self.w2(seq)))  # (Q, L, 1)
        s_g = (alpha * seq * mask.unsqueeze(-1)).sum(1)  # Eq. (6)
        return self.w3(torch.cat([s_l, s_g], -1))  # Eq. (7)

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        v_p = self.item(self.items(batch["item_id"]), batch["item_x"])  # (Q, c)
        return (self.session(batch) * v_p).sum(-1) + self.bias  # Eq. (8)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(hidden={self.config.hidden}, "
                f"steps={self.config.steps}, items={self.items.size - 1})")
