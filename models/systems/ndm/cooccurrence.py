"""Co-occurrence baseline for the NDM task: the next user is drawn in proportion to how often
users followed the last infected user in the training cascades (fitted once, no gradients).

    count[u, v] = #{training cascades where v comes 1..window places after u}
    count[u_last, Terminate] += 1 for every training cascade's last user (unless the task's
                                  ``terminate_target`` option is off)
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

from models.base import Task, register_model
from models.systems.ndm.cascade import NextUserModel


@register_model("ndm", "cooccurrence")
class Cooccurrence(NextUserModel):
    trainable = False

    @dataclasses.dataclass
    class Config:
        window: int = 1
        alpha: float = 0.01

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        # One row per user plus a zero row for padding.
        self.register_buffer("counts", torch.zeros(self.n_users + 2, self.vocab))

    def fit(self, examples: Sequence[Any], task: Task | None) -> None:
        """Count successors in ``examples``; Terminate after each last user unless ``task``'s
        options say ``terminate_target`` is off."""
        terminate_target = getattr(getattr(task, "options", None), "terminate_target", True)
        counts = torch.zeros_like(self.counts)
        for e in examples:
            users = e["users"].long()
            for m in range(1, self.config.window + 1):
                if users.numel() > m:
                    pairs = users[:-m] * self.vocab + users[m:]
                    counts.view(-1).index_add_(0, pairs, torch.ones(pairs.numel()))
            if terminate_target:
                counts[users[-1], self.n_users] += 1  # Terminate after the last user
        self.counts.copy_(counts)

    def _log_scores(self, last: torch.Tensor) -> torch.Tensor:
        return (self.counts[last] + self.config.alpha).log()

    def log_probs(self, users: torch.Tensor) -> torch.Tensor:
        return self.masked_log_softmax(self._log_scores(users), users)

    # -- incremental inference for simulation (Simulable): the state is the last user ---------

    def begin(
        self, prefix: torch.Tensor, max_new: int = 0
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        last = prefix[:, -1]
        return {"last": last}, self._log_scores(last)

    def extend(
        self, state: dict[str, torch.Tensor], users: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"last": users}, self._log_scores(users)

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}(users={self.n_users}, window={c.window}, alpha={c.alpha})"
