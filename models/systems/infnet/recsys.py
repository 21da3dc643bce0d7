"""Pieces the recommender baselines share: id maps, the receiver's history as a session graph,
the target's share partners, and a base class that scores a query by a logit.

The batch fields they read (``hist_item``, ``hist_kind``, ``hist_len``, ``user_id``,
``item_id``, ``item_x``, ``graph``) are described in ``models.systems.infnet.task``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import ShardModel
from models.systems.infnet.infnet import base_logit
from models.systems.infnet.interactions import TrainInteractions


def train_interactions(meta: dict[str, Any]) -> TrainInteractions:
    """``meta["train_interactions"]()``, with an error that says where it comes from."""
    source = meta.get("train_interactions")
    if source is None:
        raise KeyError("meta has no 'train_interactions': build the model from "
                       "InfNetTask.meta(), which reads the train split for it")
    return source() if callable(source) else source


class IdIndex(nn.Module):
    """Raw ids -> rows 1..n of an embedding table; 0 for an id outside the vocabulary and for
    negative (padding) ids, so tables declare ``padding_idx=0`` and unseen ids score as zero.

    Args:
        ids: the vocabulary (any order, duplicates allowed), kept sorted in a buffer.

    Shapes: any (...) int64 -> (...) int64.
    """

    def __init__(self, ids: np.ndarray):
        super().__init__()
        self.register_buffer("ids", torch.as_tensor(np.unique(np.asarray(ids, np.int64))))

    @property
    def size(self) -> int:
        """Rows an embedding table needs: the vocabulary plus row 0."""
        return int(self.ids.numel()) + 1

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        if self.ids.numel() == 0:
            return torch.zeros_like(raw)
        pos = torch.searchsorted(self.ids, raw.contiguous()).clamp(max=self.ids.numel() - 1)
        return torch.where(self.ids[pos] == raw, pos + 1, torch.zeros_like(pos))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.ids.numel()})"


def history_mask(batch: dict[str, Any]) -> torch.Tensor:
    """(Q, L) bool: True at the receiver's records, False in the padding."""
    width = batch["hist_item"].size(1)
    return torch.arange(width, device=batch["hist_len"].device) < batch["hist_len"].unsqueeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (Q, L, c) over the True positions of mask (Q, L); zeros where none."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def last_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x[q, lengths[q] - 1] for (Q, L, c) x; zeros for empty rows."""
    pick = (lengths - 1).clamp(min=0)
    out = x[torch.arange(x.size(0), device=x.device), pick]
    return out * (lengths > 0).unsqueeze(-1).to(x.dtype)


def masked_softmax(score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim among the True entries of mask; rows without any give zeros.
    (A finite fill, not -inf: a row of -inf would put NaN into the gradients.)"""
    weights = score.masked_fill(~mask, -1e9).softmax(-1)
    return weights * mask.to(weights.dtype)


@dataclass
class SessionGraph:
    """The distinct keys of each query's history as nodes, with typed transition edges.

    Attributes:
        node_key: (S,) the key of each node; node_query: (S,) its query; nodes are sorted by
            (query, key).
        alias: (Q, L) the node of each history position (0 in the padding: mask it).
        edge_index: (2, E) src -> dst for every pair of nodes adjacent in a history, both
            directions; edge_type: (E,) from dst's side: 0 src came before dst ("in"), 1 src
            came after ("out"), 2 both.
    """

    node_key: torch.Tensor
    node_query: torch.Tensor
    alias: torch.Tensor
    edge_index: torch.Tensor
    edge_type: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return int(self.node_key.numel())


def session_graph(key: torch.Tensor, mask: torch.Tensor) -> SessionGraph:
    """SR-GNN's session graph of every query at once.

    Args:
        key: (Q, L) non-negative node keys (e.g. item rows); mask: (Q, L) valid positions.
    """
    queries, width = key.shape
    device = key.device
    row = torch.arange(queries, device=device).unsqueeze(1).expand(queries, width)
    span = int(key.max().item()) + 1 if key.numel() else 1
    combined = row[mask] * span + key[mask]
    nodes, inverse = torch.unique(combined, return_inverse=True)  # sorted: grouped by query
    alias = torch.zeros_like(key)
    alias[mask] = inverse
    step = mask[:, 1:] & mask[:, :-1]
    a, b = alias[:, :-1][step], alias[:, 1:][step]
    moves = torch.stack([a, b])[:, a != b]
    moves = torch.unique(moves, dim=1) if moves.numel() else moves
    # a -> b seen: for b, a is an in-neighbour (flag 1); for a, b is an out-neighbour (flag 2)
    src = torch.cat([moves[0], moves[1]])
    dst = torch.cat([moves[1], moves[0]])
    flag = torch.cat([torch.ones_like(moves[0]), 2 * torch.ones_like(moves[0])])
    n = max(int(nodes.numel()), 1)
    pairs, which = torch.unique(src * n + dst, return_inverse=True)
    flags = torch.zeros_like(pairs).scatter_add_(0, which, flag)
    return SessionGraph(
        node_key=nodes % span,
        node_query=nodes // span,
        alias=alias,
        edge_index=torch.stack([pairs // n, pairs % n]),
        edge_type=flags - 1,
    )


def positions(states: torch.Tensor, g: SessionGraph, mask: torch.Tensor) -> torch.Tensor:
    """Node states (S, c) back at the history positions: (Q, L, c), zero in the padding."""
    if states.size(0) == 0:  # no query of the batch has a history
        return states.new_zeros(*mask.shape, states.size(-1))
    return states[g.alias] * mask.unsqueeze(-1).to(states.dtype)


def target_neighbours(graph) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct (query, user id) share partners of each query's target: the users it sent to
    or received from in any week of its sub-graphs. Returns two (P,) int64 tensors."""
    is_target = torch.zeros(graph.num_nodes, dtype=torch.bool, device=graph.node_id.device)
    is_target[graph.ptr[:-1]] = True
    src, dst = graph.edge_index
    out_of, into = is_target[src], is_target[dst]
    query = torch.cat([graph.batch[src[out_of]], graph.batch[dst[into]]])
    other = torch.cat([dst[out_of], src[into]])
    keep = ~is_target[other]  # a self-share is no partner
    query, other = query[keep], other[keep]
    pairs = torch.stack([query, graph.node_id[other]])
    if pairs.numel():
        pairs = torch.unique(pairs, dim=1)
    return pairs[0], pairs[1]


class ItemEncoder(nn.Module):
    """v_p = Q[p] + W Attr(p): an item's free embedding plus its PI / category one-hot, the
    session baselines' "price-related features when encoding the item".

    Args:
        rows (int): embedding rows (row 0 = unknown item, zero); channels (int): c;
        item_dim (int): size of ``item_x``.

    Shapes: idx (Q,), item_x (Q, item_dim) -> (Q, c).
    """

    def __init__(self, rows: int, channels: int, item_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(rows, channels, padding_idx=0)
        self.attr = nn.Linear(item_dim, channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.1)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.attr.reset_parameters()

    def forward(self, idx: torch.Tensor, item_x: torch.Tensor) -> torch.Tensor:
        return self.embedding(idx) + self.attr(item_x)


class LogitRecommender(ShardModel):
    """A baseline that scores a query by one logit: binary cross-entropy to train, sigmoid to
    predict. Subclasses define ``logits(batch) -> (Q,)`` and may use ``self.bias``, which
    starts at the training split's base rate."""

    def __init__(self, config: Any, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.bias = nn.Parameter(torch.zeros(1))

    def reset_bias(self) -> None:
        nn.init.constant_(self.bias, base_logit(self.meta))

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.logits(batch), batch["y"])

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.sigmoid(self.logits(batch))
