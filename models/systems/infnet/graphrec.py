r"""GraphRec: graph neural networks for social recommendation (Fan et al., WWW 2019).

The paper's idea: a user is modelled twice and the two fused, :math:`h_i = \mathrm{MLP}([h^I_i;
h^S_i])`: item aggregation over the items the user rated, each an opinion-aware vector
:math:`x_{ia} = g_v([q_a; e_r])` weighted by attention :math:`\alpha_{ia}` on
:math:`[x_{ia}; p_i]`; social aggregation over the user's friends with attention
:math:`\beta_{io}` on :math:`[h^I_o; p_i]`. An item is modelled by user
aggregation, :math:`f_{jt} = g_u([p_t; e_r])` weighted by :math:`\mu_{jt}` on :math:`[f_{jt};
q_j]`; an MLP on :math:`[h_i; z_j]` predicts the rating.

Our adaptation: opinions are the record kinds (received, sent, bought: three embeddings
:math:`e_r`); the receiver's items are its own history records; its friends are its share
partners in the query's sub-graphs, each represented by its user embedding :math:`p_o` (the
shard carries no history of the partners, so :math:`h^I_o` is not available); an item's users
are the train split's history records of it before the first prediction day (the ``users``
most frequent (user, kind) pairs). The MLP outputs the query's logit, trained by binary
cross-entropy; as the paper's deployment, no item or user attributes enter.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter, softmax

from contracts.infnet import HISTORY_KINDS
from models.base import register_model
from models.systems.infnet.interactions import top_neighbours
from models.systems.infnet.recsys import (
    IdIndex,
    LogitRecommender,
    history_mask,
    masked_softmax,
    target_neighbours,
    train_interactions,
)


class Attention(nn.Module):
    """A two-layer attention score on [x; context] (GraphRec's alpha, beta and mu).

    Shapes: x (..., 2d) -> (...,) unnormalised scores.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.hidden = nn.Linear(2 * dim, dim)
        self.out = nn.Linear(dim, 1)

    def reset_parameters(self) -> None:
        self.hidden.reset_parameters()
        self.out.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x))).squeeze(-1)


def mlp(dim_in: int, dim: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim), nn.ReLU(), nn.Linear(dim, dim_out))


@register_model("infnet", "graphrec")
class GraphRec(LogitRecommender):
    r"""Args (``Config``): dim d (64); users (20) kept per item for user aggregation.

    Buffers: ``item_users`` (items, users) entries ``user_row * 3 + kind`` (0: none).

    Shapes: batch as in ``models.systems.infnet.task``; predict -> (Q,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        dim: int = 64
        users: int = 20

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        d = config.dim
        kinds = len(HISTORY_KINDS)
        inter = train_interactions(meta)
        self.users = IdIndex(inter.users())
        self.items = IdIndex(inter.items())
        item, user, kind, count = inter.item_users()
        code = self.users(torch.as_tensor(user)).numpy() * kinds + kind
        rows = self.items(torch.as_tensor(item)).numpy()
        known = code >= kinds  # users outside the vocabulary are row 0: no entry
        table, _ = top_neighbours(code[known], rows[known], count[known], self.items.size,
                                  config.users)
        self.register_buffer("item_users", torch.as_tensor(table))
        self.user_emb = nn.Embedding(self.users.size, d, padding_idx=0)  # p
        self.item_emb = nn.Embedding(self.items.size, d, padding_idx=0)  # q
        self.opinion = nn.Embedding(kinds, d)  # e_r
        self.g_v, self.g_u = mlp(2 * d, d, d), mlp(2 * d, d, d)
        self.item_att, self.social_att, self.user_att = Attention(d), Attention(d), Attention(d)
        self.w_item = nn.Linear(d, d)
        self.w_social = nn.Linear(d, d)
        self.w_user = nn.Linear(d, d)
        self.fuse = mlp(2 * d, d, d)
        self.predictor = mlp(2 * d, d, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in (self.user_emb, self.item_emb):
            nn.init.normal_(table.weight, std=0.1)
            with torch.no_grad():
                table.weight[0].zero_()
        nn.init.normal_(self.opinion.weight, std=0.1)
        for module in (self.item_att, self.social_att, self.user_att, self.w_item,
                       self.w_social, self.w_user):
            module.reset_parameters()
        for seq in (self.g_v, self.g_u, self.fuse, self.predictor):
            for layer in seq:
                if isinstance(layer, nn.Linear):
                    layer.reset_parameters()
        self.reset_bias()

    def item_aggregation(self, batch: dict[str, Any], p_i: torch.Tensor) -> torch.Tensor:
        """h^I (Q, d), item aggregation over the receiver's history records."""
        mask = history_mask(batch)
        q_a = self.item_emb(self.items(batch["hist_item"]))  # (Q, L, d)
        x = self.g_v(torch.cat([q_a, self.opinion(batch["hist_kind"])], -1))  # x_ia
        score = self.item_att(torch.cat([x, p_i.unsqueeze(1).expand_as(x)], -1))
        alpha = masked_softmax(score, mask)
        return F.relu(self.w_item((alpha.unsqueeze(-1) * x).sum(1)))  # h^I

    def social_aggregation(self, batch: dict[str, Any], p_i: torch.Tensor) -> torch.Tensor:
        """h^S (Q, d), social aggregation over the receiver's share partners."""
        query, partner = target_neighbours(batch["graph"])
        p_o = self.user_emb(self.users(partner))  # (P, d)
        beta = softmax(self.social_att(torch.cat([p_o, p_i[query]], -1)), query,
                       num_nodes=p_i.size(0))
        pooled = scatter(beta.unsqueeze(-1) * p_o, query, 0, dim_size=p_i.size(0), reduce="sum")
        return F.relu(self.w_social(pooled))  # h^S

    def user_aggregation(self, rows: torch.Tensor) -> torch.Tensor:
        """z_j (Q, d), user aggregation over the item's users in the train histories."""
        kinds = len(HISTORY_KINDS)
        code = self.item_users[rows]  # (Q, K)
        q_j = self.item_emb(rows)
        f = self.g_u(torch.cat([self.user_emb(code // kinds), self.opinion(code % kinds)], -1))
        score = self.user_att(torch.cat([f, q_j.unsqueeze(1).expand_as(f)], -1))
        mu = masked_softmax(score, code > 0)
        return F.relu(self.w_user((mu.unsqueeze(-1) * f).sum(1)))  # z_j

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        p_i = self.user_emb(self.users(batch["user_id"]))  # (Q, d)
        h_i = self.fuse(torch.cat([self.item_aggregation(batch, p_i),
                                   self.social_aggregation(batch, p_i)], -1))  # h_i
        z_j = self.user_aggregation(self.items(batch["item_id"]))
        return self.predictor(torch.cat([h_i, z_j], -1)).squeeze(-1) + self.bias  # rating MLP

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(dim={self.config.dim}, users={self.users.size - 1}, "
                f"items={self.items.size - 1})")
