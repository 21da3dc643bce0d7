r"""GCE-GNN: global context enhanced graph neural network (Wang et al., SIGIR 2020).

The paper's idea: two item representations, fused. Session level: attention over the
session graph whose edges carry a type (in, out, in-out, self), one attention vector per type.
Global level: over an item graph of all sessions (items within epsilon steps,
each item's top-N neighbours by frequency), session-aware attention
:math:`\pi(v_i, v_j) = q_1^\top \mathrm{LeakyReLU}(W_1 [(s \odot h_{v_j}); w_{ij}])`,
:math:`h^g_v = \mathrm{ReLU}(W_2 [h_v; h_{N_v}])`. Their sum is read out with reversed position
embeddings, :math:`z_i = \tanh(W_3 [h'_i; p_{l-i+1}] + b_3)`, :math:`\beta_i = q_2^\top
\sigma(W_4 z_i + W_5 s' + b_4)`, :math:`S = \sum_i \beta_i h'_i`.

Our adaptation: sessions are the receivers' histories; the global graph comes from the train
split's histories before the first prediction day (items at most ``window`` records apart,
each item's ``neighbours`` most frequent, as the paper's epsilon = 2 and N = 12). The typed
session attention is PyG's ``GATConv`` with the one-hot edge type as its edge feature (so each
type adds its own term to the attention logit). The query item is its embedding plus its PI /
category one-hot; :math:`\sigma(S^\top v_p + b)` is trained by binary cross-entropy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv

from models.base import register_model
from models.systems.infnet.interactions import top_neighbours
from models.systems.infnet.recsys import (
    IdIndex,
    ItemEncoder,
    LogitRecommender,
    history_mask,
    masked_mean,
    masked_softmax,
    positions,
    session_graph,
    train_interactions,
)

EDGE_TYPES = 4  # in, out, in-out, self


@register_model("infnet", "gce_gnn")
class GCEGNN(LogitRecommender):
    r"""Args (``Config``): hidden c (64); neighbours N (12); window epsilon (2);
    dropout (0.0) on the global representation.

    Buffers: ``global_index`` (items, N) neighbour rows (0: none), ``global_weight`` (items, N)
    log1p of their co-occurrence counts.

    Shapes: batch as in ``models.systems.infnet.task``; predict -> (Q,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        hidden: int = 64
        neighbours: int = 12
        window: int = 2
        dropout: float = 0.0

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config.hidden
        inter = train_interactions(meta)
        self.items = IdIndex(inter.items())
        a, b, counts = inter.cooccurrences(config.window)
        rows_a = self.items(torch.as_tensor(a)).numpy()
        rows_b = self.items(torch.as_tensor(b)).numpy()
        index, weight = top_neighbours(rows_a, rows_b, counts, self.items.size,
                                       config.neighbours)
        self.register_buffer("global_index", torch.as_tensor(index))
        self.register_buffer("global_weight", torch.as_tensor(np.log1p(weight)))
        self.max_len = max(1, int(meta["history_len"]))
        self.item = ItemEncoder(self.items.size, c, int(meta["item_dim"]))
        self.session_att = GATConv(c, c, edge_dim=EDGE_TYPES, add_self_loops=False)
        self.w1 = nn.Linear(c + 1, c, bias=False)
        self.q1 = nn.Linear(c, 1, bias=False)
        self.w2 = nn.Linear(2 * c, c)
        self.dropout = nn.Dropout(config.dropout)
        self.position = nn.Embedding(self.max_len, c)
        self.w3 = nn.Linear(2 * c, c)
        self.w4 = nn.Linear(c, c)
        self.w5 = nn.Linear(c, c, bias=False)
        self.q2 = nn.Linear(c, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.item.reset_parameters()
        for module in (self.session_att, self.w1, self.q1, self.w2, self.w3, self.w4, self.w5,
                       self.q2):
            module.reset_parameters()
        nn.init.normal_(self.position.weight, std=0.1)
        self.reset_bias()

    def session_level(self, h: torch.Tensor, g) -> torch.Tensor:
        """Session level: typed attention over each node's session neighbours and itself."""
        loops = torch.arange(h.size(0), device=h.device)
        edge_index = torch.cat([g.edge_index, torch.stack([loops, loops])], 1)
        types = torch.cat([g.edge_type, torch.full_like(loops, EDGE_TYPES - 1)])
        return self.session_att(h, edge_index, F.one_hot(types, EDGE_TYPES).to(h.dtype))

    def global_level(self, rows: torch.Tensor, h: torch.Tensor, s: torch.Tensor
                     ) -> torch.Tensor:
        """Global level, one layer: rows (S,), h (S, c) their embeddings, s (S, c) the mean of
        their session's items -> h^g (S, c)."""
        nbr = self.global_index[rows]  # (S, N)
        h_n = self.item.embedding(nbr)  # (S, N, c)
        w = self.global_weight[rows].unsqueeze(-1)  # (S, N, 1)
        logit = self.q1(F.leaky_relu(self.w1(torch.cat([s.unsqueeze(1) * h_n, w], -1))))
        pi = masked_softmax(logit.squeeze(-1), nbr > 0)  # (S, N) pi
        h_nv = (pi.unsqueeze(-1) * h_n).sum(1)  # h_{N_v}
        return F.relu(self.w2(torch.cat([h, h_nv], -1)))  # h^g_v

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        mask = history_mask(batch)
        rows = self.items(batch["hist_item"])  # (Q, L)
        g = session_graph(rows, mask)
        h = self.item.embedding(g.node_key)  # (S, c)
        s_mean = masked_mean(self.item.embedding(rows), mask)  # (Q, c)
        h_prime = self.session_level(h, g) + self.dropout(
            self.global_level(g.node_key, h, s_mean[g.node_query]))  # sum pooling
        seq = positions(h_prime, g, mask)  # (Q, L, c)
        width = seq.size(1)
        reverse = (batch["hist_len"].unsqueeze(1) - 1
                   - torch.arange(width, device=seq.device)).clamp(0, self.max_len - 1)
        z = torch.tanh(self.w3(torch.cat([seq, self.position(reverse)], -1)))  # z_i
        s_prime = masked_mean(seq, mask)
        beta = self.q2(torch.sigmoid(self.w4(z) + self.w5(s_prime).unsqueeze(1)))  # beta_i
        session = (beta * seq * mask.unsqueeze(-1)).sum(1)  # S, (Q, c)
        v_p = self.item(self.items(batch["item_id"]), batch["item_x"])
        return (session * v_p).sum(-1) + self.bias

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(hidden={self.config.hidden}, "
                f"neighbours={self.config.neighbours}, items={self.items.size - 1})")
