r"""BPR: matrix factorisation trained by Bayesian Personalized Ranking (Rendle et al., UAI 2009).

The paper's idea: implicit feedback says only which items a user took; BPR assumes a user
prefers a taken item i to an untaken j and maximises :math:`\sum \ln \sigma(\hat x_{ui} -
\hat x_{uj})` over sampled triples (u, i, j), with :math:`\hat x_{ui} = \langle p_u, q_i \rangle`
and an L2 prior on the factors.

Our adaptation to the query (receiver u, item p): the taken items are the train split's
purchases (the receivers' history purchases before the first prediction day, plus the items of
train queries labelled 1); each training step samples as many triples as the batch holds
queries, j uniform among the items u did not buy. A query scores :math:`\sigma(\langle p_u,
q_p \rangle)`; users and items outside the train split map to a zero row (score 0.5).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.base import ShardModel, register_model
from models.systems.infnet.recsys import IdIndex, train_interactions


@register_model("infnet", "bpr")
class BPR(ShardModel):
    r"""Args (``Config``): dim (64) factors; l2 (1e-4) the prior's weight on the factors of each
    triple; labels (True) whether train queries labelled 1 count as purchases.

    Buffers: ``pair_key`` the sorted keys ``user_row * items + item_row`` of the purchases.

    Shapes: predict(batch) -> (Q,); loss(batch) -> scalar (Eq. BPR-Opt, negated, per triple).
    """

    @dataclasses.dataclass
    class Config:
        dim: int = 64
        l2: float = 1e-4
        labels: bool = True

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        inter = train_interactions(meta)
        self.users = IdIndex(inter.query_users())
        self.items = IdIndex(inter.items())
        self.user_factors = nn.Embedding(self.users.size, config.dim, padding_idx=0)
        self.item_factors = nn.Embedding(self.items.size, config.dim, padding_idx=0)
        user_ids, item_ids = inter.purchases(labels=config.labels)
        u = self.users(torch.as_tensor(user_ids))
        i = self.items(torch.as_tensor(item_ids))
        self.register_buffer("pair_user", u)
        self.register_buffer("pair_item", i)
        self.register_buffer("pair_key", torch.sort(u * self.items.size + i).values)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in (self.user_factors, self.item_factors):
            nn.init.normal_(table.weight, std=0.1)
            with torch.no_grad():
                table.weight[0].zero_()

    def bought(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """(n,) bool: whether each (user row, item row) is a training purchase."""
        if self.pair_key.numel() == 0:
            return torch.zeros_like(user, dtype=torch.bool)
        key = user * self.items.size + item
        pos = torch.searchsorted(self.pair_key, key).clamp(max=self.pair_key.numel() - 1)
        return self.pair_key[pos] == key

    def triples(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n sampled (u, i, j): a purchase (u, i) and an item j that u did not buy."""
        device = self.pair_user.device
        pick = torch.randint(self.pair_user.numel(), (n,), device=device)
        u, i = self.pair_user[pick], self.pair_item[pick]
        j = torch.randint(1, self.items.size, (n,), device=device)
        for _ in range(4):  # resample the j that u did buy; few survive four rounds
            taken = self.bought(u, j)
            if not bool(taken.any()):
                break
            j = torch.where(taken, torch.randint_like(j, 1, self.items.size), j)
        keep = ~self.bought(u, j)
        return u[keep], i[keep], j[keep]

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        # nothing to rank: a zero that still touches every weight (DDP needs that)
        nothing = 0.0 * (self.user_factors.weight.sum() + self.item_factors.weight.sum())
        if self.pair_user.numel() == 0 or self.items.size < 3:
            return nothing
        u, i, j = self.triples(int(batch["item_id"].numel()))
        if u.numel() == 0:
            return nothing
        p_u, q_i, q_j = self.user_factors(u), self.item_factors(i), self.item_factors(j)
        x_uij = (p_u * (q_i - q_j)).sum(-1)  # x_ui - x_uj
        prior = p_u.pow(2).sum(-1) + q_i.pow(2).sum(-1) + q_j.pow(2).sum(-1)
        return (-F.logsigmoid(x_uij) + self.config.l2 * prior).mean()

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        p_u = self.user_factors(self.users(batch["user_id"]))
        q_p = self.item_factors(self.items(batch["item_id"]))
        return torch.sigmoid((p_u * q_p).sum(-1))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(dim={self.config.dim}, users={self.users.size - 1}, "
                f"items={self.items.size - 1}, purchases={self.pair_user.numel()})")


def score_matrix(model: BPR, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """(users, items) predicted scores of every pair, for inspection and tests."""
    users = torch.as_tensor(np.repeat(user_ids, len(item_ids)))
    items = torch.as_tensor(np.tile(item_ids, len(user_ids)))
    with torch.no_grad():
        scores = model.predict({"user_id": users, "item_id": items})
    return scores.view(len(user_ids), len(item_ids)).numpy()
