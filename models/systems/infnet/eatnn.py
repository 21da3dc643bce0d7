r"""EATNN: efficient adaptive transfer neural network for social-aware recommendation
(Chen et al., SIGIR 2019).

The paper's idea: each user has a shared embedding :math:`u^c`, an item-domain one :math:`u^i`
and a social-domain one :math:`u^s`; per-user attention mixes them,
:math:`p^I_u = \alpha^I_c u^c + \alpha^I_i u^i`, :math:`\alpha^I_x \propto \exp(h_\alpha^\top
\mathrm{ReLU}(W_\alpha u^x + b_\alpha))` (likewise :math:`p^S_u` with its own attention).
The item domain predicts :math:`\hat y_{uv} = h_1^\top (p^I_u \odot q_v)`, the
social domain :math:`\hat s_{ut} = h_2^\top (p^S_u \odot g_t)`; both are trained jointly on all
the data without negative sampling, the squared loss over every (user, item) and (user, friend)
weighted :math:`c_0` on the missing entries, computed in :math:`O((|B| + |V|) d^2)`
by swapping the sums over pairs and over dimensions.

Our adaptation: the item domain's positives are the train split's purchases (history purchases
before the first prediction day and the items of train queries labelled 1); the social domain's
are the receiver's share partners in the query's sub-graphs. Each step takes the batch's
receivers as the users and every item (every user) of the vocabulary as the candidates. A query
scores :math:`\sigma(\hat y_{up})`, a monotone map of the item-domain prediction into (0, 1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from models.base import ShardModel, register_model
from models.systems.infnet.recsys import IdIndex, target_neighbours, train_interactions


def whole_data_loss(p: torch.Tensor, q: torch.Tensor, h: torch.Tensor, pos_p: torch.Tensor,
                    pos_q: torch.Tensor, c0: float) -> torch.Tensor:
    r"""The whole-data loss: :math:`\sum_{(u,v) \in \mathcal{R}} [(1 - c_0) \hat y^2 - 2 \hat y]
    + c_0 \sum_{d, d'} (h_d h_{d'}) (\sum_u p_{ud} p_{ud'}) (\sum_v q_{vd} q_{vd'})`,
    the weighted squared loss over all pairs less its constant.

    Shapes: p (B, d) the users, q (V, d) every candidate, h (d,); pos_p, pos_q (P, d) the two
    sides of the positive pairs.
    """
    y_pos = (pos_p * pos_q) @ h  # (P,)
    positives = ((1.0 - c0) * y_pos.pow(2) - 2.0 * y_pos).sum()
    every = (torch.outer(h, h) * (p.T @ p) * (q.T @ q)).sum()
    return positives + c0 * every


class DomainAttention(nn.Module):
    """Per-user weights of the shared and the domain-specific embedding (the transfer attention).

    Shapes: shared, own (B, d) -> (B, d) the mixed representation.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.h = nn.Linear(hidden, 1, bias=False)

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        self.h.reset_parameters()

    def forward(self, shared: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        both = torch.stack([shared, own], 1)  # (B, 2, d)
        alpha = self.h(torch.relu(self.proj(both))).softmax(1)  # (B, 2, 1)
        return (alpha * both).sum(1)


@register_model("infnet", "eatnn")
class EATNN(ShardModel):
    r"""Args (``Config``): dim d (64); attention (32) hidden size of the attention; c0_item
    (0.05), c0_social (0.05) weights of the missing entries; social (0.5) weight of the social
    loss; labels (True) whether train queries labelled 1 count as purchases.

    Shapes: batch as in ``models.systems.infnet.task``; predict -> (Q,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        dim: int = 64
        attention: int = 32
        c0_item: float = 0.05
        c0_social: float = 0.05
        social: float = 0.5
        labels: bool = True

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        d = config.dim
        inter = train_interactions(meta)
        self.users = IdIndex(inter.users())
        self.items = IdIndex(inter.items())
        user_ids, item_ids = inter.purchases(labels=config.labels)
        u = self.users(torch.as_tensor(user_ids))
        order = torch.argsort(u, stable=True)
        self.register_buffer("pair_user", u[order])  # sorted: each user's purchases together
        self.register_buffer("pair_item", self.items(torch.as_tensor(item_ids))[order])
        self.shared = nn.Embedding(self.users.size, d, padding_idx=0)  # u^c
        self.item_side = nn.Embedding(self.users.size, d, padding_idx=0)  # u^i
        self.social_side = nn.Embedding(self.users.size, d, padding_idx=0)  # u^s
        self.item_emb = nn.Embedding(self.items.size, d, padding_idx=0)  # q_v
        self.friend_emb = nn.Embedding(self.users.size, d, padding_idx=0)  # g_t
        self.item_att = DomainAttention(d, config.attention)
        self.social_att = DomainAttention(d, config.attention)
        self.h_item = nn.Parameter(torch.empty(d))
        self.h_social = nn.Parameter(torch.empty(d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in (self.shared, self.item_side, self.social_side, self.item_emb,
                      self.friend_emb):
            nn.init.normal_(table.weight, std=0.1)
            with torch.no_grad():
                table.weight[0].zero_()
        self.item_att.reset_parameters()
        self.social_att.reset_parameters()
        nn.init.constant_(self.h_item, 1.0)
        nn.init.constant_(self.h_social, 1.0)

    def user_domains(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(p^I, p^S), each (B, d), of user rows (B,)."""
        shared = self.shared(rows)
        return (self.item_att(shared, self.item_side(rows)),
                self.social_att(shared, self.social_side(rows)))

    def purchases_of(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(index into rows, item row) of every purchase of the user rows (B,)."""
        start = torch.searchsorted(self.pair_user, rows)
        count = torch.searchsorted(self.pair_user, rows, right=True) - start
        which = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), count)
        offset = torch.arange(int(count.sum()), device=rows.device) - torch.repeat_interleave(
            torch.cumsum(count, 0) - count, count)
        return which, self.pair_item[start[which] + offset]

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        rows, slot = torch.unique(self.users(batch["user_id"]), return_inverse=True)
        p_item, p_social = self.user_domains(rows)  # (B, d)
        which, bought = self.purchases_of(rows)
        item_loss = whole_data_loss(p_item, self.item_emb.weight, self.h_item, p_item[which],
                                    self.item_emb(bought), self.config.c0_item)
        query, partner = target_neighbours(batch["graph"])
        friend = self.users(partner)
        social_loss = whole_data_loss(p_social, self.friend_emb.weight, self.h_social,
                                      p_social[slot[query]], self.friend_emb(friend),
                                      self.config.c0_social)
        return (item_loss + self.config.social * social_loss) / rows.numel()

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        p_item, _ = self.user_domains(self.users(batch["user_id"]))
        q = self.item_emb(self.items(batch["item_id"]))
        return torch.sigmoid((p_item * q) @ self.h_item)  # sigma(y_up)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(dim={self.config.dim}, users={self.users.size - 1}, "
                f"items={self.items.size - 1})")
