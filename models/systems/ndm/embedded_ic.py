"""Embedded IC baseline of the NDM paper (Sec. 5.1): an independent cascade whose transmission
probabilities come from user embeddings (Bourigault, Lamprier, Gallinari: "Representation
learning for information diffusion through social networks: an embedded cascade model", WSDM
2016), fitted by Adam, simulated as a discrete independent cascade.

Each user has a sender embedding w_u, a receiver embedding z_v (``dim``) and a receiver bias
b_v; u, once infected, infects v with probability

    p_uv = 1 / (1 + exp(b_v + ||w_u - z_v||^2))

(the paper's form: the nearer v's receiver point to u's sender point, the likelier). Cascades
carry no rounds, so, as in the paper, every user infected before v may have infected it: a
cascade c = (u_0, u_1, ...) has the log-likelihood

    log L(c) = sum_{i >= 1} log(1 - prod_{j < i} (1 - p_{u_j u_i}))
               + sum_{v not in c} sum_{j} log(1 - p_{u_j v})

and the fit maximises its mean over training cascades with Adam (``steps`` steps on batches of
``batch_size`` cascades of similar length, ``lr``).

Simulation (``Simulable``), rounds of a discrete independent cascade: the given users are
round 0; each user of round r gets one chance to infect each uninfected user (coin flips with
the simulation's generator), and those it infects form round r + 1. Users come out round by
round, in random order within a round (the simulator draws them uniformly from the pending
ones), and the cascade ends (Terminate) when a round infects nobody. A round is drawn only
when the one before is used up, so a simulation capped at |G^c| users draws no more rounds
than it needs. ``predict`` (the next-user ranking) scores v by log P(some prefix user infects
v) and Terminate by log P(none infects anyone).

Args (``EmbeddedIC.Config``):
    dim: embedding size (default 50; the paper picks from 25, 50, 100).
    steps: Adam steps (default 1200), in passes over the batches in a new order each.
    batch_size: cascades per Adam step (default 32).
    lr: Adam's learning rate (default 0.03).
    init_bias: starting b_v (default 3.0: p near 0.05 at distance 0).

Shapes:
    predict(batch) -> (B, L, |U| + 1) log-probabilities, infected users at -inf.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.base import Task, register_model
from models.systems.ndm.cascade import infected_mask
from models.systems.ndm.diffusion import DiffusionModel

log = logging.getLogger(__name__)


@register_model("ndm", "embedded_ic")
class EmbeddedIC(DiffusionModel):
    @dataclasses.dataclass
    class Config:
        dim: int = 50
        steps: int = 1200
        batch_size: int = 32
        lr: float = 0.03
        init_bias: float = 3.0

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.sender = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.receiver = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.bias = nn.Parameter(torch.empty(self.n_users))
        self.register_buffer("fit_seconds", torch.tensor(0.0))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.sender.normal_(std=0.1)
            self.receiver.normal_(std=0.1)
            self.bias.fill_(self.config.init_bias)

    def log_keep(self, senders: torch.Tensor) -> torch.Tensor:
        """(N,) sender ids -> (N, |U|) log(1 - p_uv) for every receiver v; ids past |U|
        (Terminate, padding) infect nobody (0)."""
        valid = senders < self.n_users
        w = self.sender[senders.clamp(max=self.n_users - 1)]  # (N, dim)
        dist = (w.pow(2).sum(1, keepdim=True) + self.receiver.pow(2).sum(1)
                - 2 * w @ self.receiver.T).clamp_min(0.0)  # (N, |U|) ||w_u - z_v||^2
        return F.logsigmoid(self.bias + dist) * valid[:, None]  # log(1 - p) = log sigmoid(x)

    def log_likelihood(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) log L(c) of each cascade of ``users`` (B, L), padded with ids >= |U|."""
        batch, length = users.shape
        keep = self.log_keep(users.flatten()).view(batch, length, -1)  # (B, L, |U|)
        before = keep.cumsum(1) - keep  # sum over j < i, (B, L, |U|)
        real = users < self.n_users
        ids = users.clamp(max=self.n_users - 1)
        none = before.gather(2, ids[:, :, None]).squeeze(2)  # log prod_{j<i} (1 - p_{u_j u_i})
        infected = torch.log(-torch.expm1(none.clamp(max=-1e-12)))  # (B, L)
        positive = (infected * real)[:, 1:].sum(1)
        in_cascade = torch.zeros(batch, self.n_users + 1, dtype=torch.bool, device=users.device)
        in_cascade.scatter_(1, torch.where(real, users, self.n_users), True)  # padding: spare
        negative = (keep.sum(1) * ~in_cascade[:, :-1]).sum(1)
        return positive + negative

    def fit(self, examples: Sequence[dict[str, Any]], task: Task | None) -> None:
        """Adam on the mean negative log-likelihood of the training cascades."""
        started = time.perf_counter()
        c = self.config
        self.reset_parameters()  # the trainer's --seed seeds these draws and the batch order
        device = self.sender.device
        cascades = sorted((e["users"].long() for e in examples), key=len)
        pad = self.n_users + 1
        batches = [torch.nn.utils.rnn.pad_sequence(cascades[s: s + c.batch_size], True, pad)
                   for s in range(0, len(cascades), c.batch_size)]
        optimizer = torch.optim.Adam(self.parameters(), lr=c.lr)
        step, total, seen = 0, 0.0, 0
        while step < c.steps:  # passes over the batches, each in a new order
            for k in torch.randperm(len(batches)).tolist():
                users = batches[k].to(device)
                loss = -self.log_likelihood(users).sum() / users.shape[0]
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step, seen = step + 1, seen + users.shape[0]
                total -= loss.item() * users.shape[0]
                if step == c.steps:
                    break
            log.info("embedded_ic: step %d, mean log-likelihood %.4f", step,
                     total / max(seen, 1))
            total, seen = 0.0, 0
        self.fit_seconds.fill_(time.perf_counter() - started)
        log.info("embedded_ic: fitted in %.1f s", self.fit_seconds.item())

    def log_probs(self, users: torch.Tensor) -> torch.Tensor:
        batch, length = users.shape
        none = self.log_keep(users.flatten()).view(batch, length, -1).cumsum(1)  # (B, L, |U|)
        reached = torch.log(-torch.expm1(none.clamp(max=-1e-12)))
        uninfected = ~self.infected_users(users)
        stop = (none * uninfected).sum(-1, keepdim=True)  # log P(no prefix user infects anyone)
        return self.masked_log_softmax(torch.cat([reached, stop], -1), users)

    def infected_users(self, users: torch.Tensor) -> torch.Tensor:
        """(B, L) prefixes -> (B, L, |U|) bool: who is in u_0 .. u_j."""
        return infected_mask(users, self.vocab)[..., : self.n_users]

    # -- simulation (Simulable): infected, pending (drawn, not yet emitted) and round users -----

    def begin(
        self, prefix: torch.Tensor, max_new: int = 0, generator: torch.Generator | None = None
    ) -> tuple[dict[str, Any], torch.Tensor]:
        sims = prefix.shape[0]
        infected = torch.zeros(sims, self.n_users, dtype=torch.bool, device=prefix.device)
        infected.scatter_(1, prefix.long().clamp(max=self.n_users - 1), True)
        state = {"infected": infected, "pending": torch.zeros_like(infected),
                 "round": infected.clone(), "generator": generator}
        self._next_round(state, torch.arange(sims, device=prefix.device))
        return state, self._scores(state)

    def extend(
        self, state: dict[str, Any], users: torch.Tensor
    ) -> tuple[dict[str, Any], torch.Tensor]:
        moved = users < self.n_users
        state = dict(state, pending=state["pending"].clone(), infected=state["infected"].clone(),
                     round=state["round"].clone())
        rows = moved.nonzero().squeeze(1)
        state["pending"][rows, users[rows]] = False
        used_up = moved & ~state["pending"].any(1)
        self._next_round(state, used_up.nonzero().squeeze(1))
        return state, self._scores(state)

    def _next_round(self, state: dict[str, Any], rows: torch.Tensor) -> None:
        """Draw the round after ``rows``' current one (in place): each of its users infects
        each uninfected user with probability p_uv."""
        if rows.numel() == 0:
            return
        current = state["round"][rows]  # (K, |U|)
        senders = current.any(0).nonzero().squeeze(1)
        keep = self.log_keep(senders)  # (K', |U|)
        none = current[:, senders].to(keep.dtype) @ keep  # (K, |U|) log P(nobody infects v)
        draw = torch.rand(none.shape, generator=state["generator"], device=none.device)
        new = (draw < -torch.expm1(none)) & ~state["infected"][rows]
        state["round"][rows] = new
        state["pending"][rows] = new
        state["infected"][rows] |= new

    def _scores(self, state: dict[str, Any]) -> torch.Tensor:
        """0 for the pending users (drawn uniformly), Terminate when none is pending."""
        pending = state["pending"]
        users = torch.where(pending, 0.0, float("-inf"))
        stop = torch.where(pending.any(1, keepdim=True), float("-inf"), 0.0)
        return torch.cat([users, stop], dim=1)

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}(users={self.n_users}, dim={c.dim})"
