"""Co-occurrence baseline for the NDM task: the next user is drawn in proportion to how often
users followed the last infected user in the training cascades (fitted once, no gradients).

    count[u, v] = #{training cascades where v comes 1..window places after u}
    count[u_last, Terminate] += 1 for every training cascade's last user
    pre(v | u_0 .. u_j) ~ count[u_j, v] + alpha        (infected users masked)

Args (``Cooccurrence.Config``):
    window: how many places after u a follower may come (default 1: immediate successors).
    alpha: additive smoothing so unseen pairs keep a little mass (default 0.01).

Shapes:
    predict(batch) -> (B, L, |U| + 1) log-probabilities, infected users at -inf.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from models.base import ShardModel, Task, register_model
from models.systems.ndm.ndm import infected_mask


@register_model("ndm", "cooccurrence")
class Cooccurrence(ShardModel):
    trainable = False

    @dataclasses.dataclass
    class Config:
        window: int = 1
        alpha: float = 0.01

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.n_users = int(meta["n_users"])
        self.vocab = self.n_users + 1
        self.pad = self.n_users + 1
        # One row per user plus a zero row for padding.
        self.register_buffer("counts", torch.zeros(self.n_users + 2, self.vocab))

    def fit(self, examples: Sequence[Any], task: Task) -> None:
        counts = torch.zeros_like(self.counts)
        for e in examples:
            users = e["users"].long()
            for m in range(1, self.config.window + 1):
                if users.numel() > m:
                    pairs = users[:-m] * self.vocab + users[m:]
                    counts.view(-1).index_add_(0, pairs, torch.ones(pairs.numel()))
            if getattr(task, "terminate_target", 1):
                counts[users[-1], self.n_users] += 1  # Terminate after the last user
        self.counts.copy_(counts)

    def _log_scores(self, last: torch.Tensor) -> torch.Tensor:
        return (self.counts[last] + self.config.alpha).log()

    def log_probs(self, users: torch.Tensor) -> torch.Tensor:
        scores = self._log_scores(users).masked_fill(
            infected_mask(users, self.vocab), float("-inf")
        )
        return torch.log_softmax(scores, dim=-1)

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.log_probs(batch["users"])

    def begin(self, prefix: torch.Tensor, max_new: int = 0):
        last = prefix[:, -1]
        return {"last": last}, self._log_scores(last)

    def extend(self, state, users: torch.Tensor):
        return {"last": users}, self._log_scores(users)

    @staticmethod
    def reorder(state, index: torch.Tensor):
        return {key: value[index] for key, value in state.items()}

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}(users={self.n_users}, window={c.window}, alpha={c.alpha})"
