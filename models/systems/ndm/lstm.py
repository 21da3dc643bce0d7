"""LSTM baseline of the NDM paper (Sec. 5.1): an LSTM over the infected users so far with a
softmax classifier over all users (plus Terminate) on its hidden state at every step.

    h_j = LSTM(emb(u_0), ..., emb(u_j)),    pre_j = softmax(h_j W + b)

As for NDM, users already infected are masked out of the softmax (``mask_infected``), and the
loss is the mean negative log-likelihood of the next user (Terminate after the last). Simulation
(``models.systems.ndm.simulation.Simulable``) steps the LSTM one user at a time.

Args (``LSTMBaseline.Config``):
    dim: user embedding size (default 64; the paper picks from 16, 32, 64, 128).
    hidden: LSTM state size (default 64).
    dropout: dropout on the hidden states before the classifier (default 0.1).
    mask_infected: mask users already in the prefix (default True).

Shapes:
    batch["users"]: (B, L), padded with ``meta["pad"]``; predict -> (B, L, |U| + 1) log-probs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from models.base import register_model
from models.systems.ndm.cascade import CascadeModel


@register_model("ndm", "lstm")
class LSTMBaseline(CascadeModel):
    @dataclasses.dataclass
    class Config:
        dim: int = 64
        hidden: int = 64
        dropout: float = 0.1
        mask_infected: bool = True

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta, config.dim)
        self.lstm = nn.LSTM(config.dim, config.hidden, batch_first=True)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, self.vocab)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.reset_embedding()
        self.lstm.reset_parameters()
        self.out.reset_parameters()

    def log_probs(self, users: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.emb(users))  # (B, L, hidden)
        scores = self.out(self.drop(hidden))  # (B, L, V)
        if self.config.mask_infected:
            return self.masked_log_softmax(scores, users)
        return torch.log_softmax(scores, dim=-1)

    # -- incremental inference for simulation (Simulable): the state is the LSTM's (h, c) ------

    def begin(
        self, prefix: torch.Tensor, max_new: int = 0
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        hidden, (h, c) = self.lstm(self.emb(prefix))
        return {"h": h[0], "c": c[0]}, self.out(hidden[:, -1])

    def extend(
        self, state: dict[str, torch.Tensor], users: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        hidden, (h, c) = self.lstm(self.emb(users)[:, None], (state["h"][None], state["c"][None]))
        return {"h": h[0], "c": c[0]}, self.out(hidden[:, 0])

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}(users={self.n_users}, dim={c.dim}, hidden={c.hidden})"
