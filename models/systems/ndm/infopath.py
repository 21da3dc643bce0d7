"""InfoPath baseline of the NDM paper (Sec. 5.1): time-varying transmission rates (Gomez-Rodriguez,
Leskovec, Schoelkopf: "Structure and dynamics of information pathways in online media", WSDM
2013), fitted by stochastic gradient on NetRate's likelihood, simulated like NetRate.

The training cascades are split by start time into ``buckets`` of equal size; bucket b has its
own rates alpha^b on the co-occurrence links. The buckets are fitted in time order, each starting
from the rates of the one before (the first from 1; a link the bucket informs from at least
``restart``), which is how InfoPath tracks rates that drift: a link that a bucket says nothing
about keeps its earlier rate. Within a bucket, for ``epochs`` passes over mini-batches of
``batch_size`` cascades B (fixed at random, visited in a new order each pass):

    alpha^b <- clip(alpha^b + lr * (alpha^b / lin_b) * grad_B, 0, max_rate)

grad_B the gradient of NetRate's log-likelihood on B, lin_b the survival coefficients of the
whole bucket (``netrate.netrate_terms``): the stochastic form of NetRate's scaled projected
gradient step, whose pass over a bucket with one batch and ``lr`` = 1 is NetRate's step. As
B's coefficients are part of the bucket's (lin_B <= lin_b), a step with ``lr`` <= 1 never takes
a rate below (1 - lr) of its value, so no infection loses all its possible parents to the clip
at 0. Simulation and ``predict`` use the rates of the last bucket, the most recent state of the
network; times are normalised as in NetRate.

Args (``InfoPath.Config``, beside NetRate's ``window`` and ``max_rate``):
    buckets: time buckets (default 4).
    epochs: passes over each bucket (default 50).
    batch_size: cascades per stochastic step (default 64).
    lr: step size of the scaled gradient, in (0, 1] (default 1.0).
    restart: the least rate a bucket starts a link it informs from (default 0.01): the scaled
        steps are multiplicative, so a rate an earlier bucket drove to 0 would stay 0.

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

from models.base import Task, register_model
from models.systems.ndm.diffusion import cascade_times
from models.systems.ndm.netrate import NetRate, log_likelihood, netrate_terms, scaled_step

log = logging.getLogger(__name__)


@register_model("ndm", "infopath")
class InfoPath(NetRate):
    fitted_buffers = ("link_src", "link_dst", "rate", "bucket_rates", "bucket_starts")

    @dataclasses.dataclass
    class Config:
        window: float = 1.0
        max_rate: float = 1e6
        buckets: int = 4
        epochs: int = 50
        batch_size: int = 64
        lr: float = 1.0
        restart: float = 0.01

    def __init__(self, config: Config, meta: dict[str, Any]):
        if config.buckets < 1 or config.epochs < 1 or config.batch_size < 1:
            raise ValueError(f"InfoPath buckets, epochs and batch_size must be >= 1, got "
                             f"{config.buckets}, {config.epochs}, {config.batch_size}")
        if not 0 < config.lr <= 1:
            raise ValueError(f"InfoPath lr must be in (0, 1], got {config.lr}")
        super().__init__(config, meta)
        self.register_buffer("bucket_rates", torch.zeros(0, 0))  # (buckets, E)
        self.register_buffer("bucket_starts", torch.zeros(0, dtype=torch.float64))  # (buckets,)

    def fit(self, examples: Sequence[dict[str, Any]], task: Task | None) -> None:
        """Per-bucket rates in time order (module docstring); the last bucket's are used."""
        started = time.perf_counter()
        c = self.config
        starts = torch.tensor([float(t[0]) for t in cascade_times(examples, task)],
                              dtype=torch.float64)
        users, times, links, window = self.training_cascades(examples, task)
        order = torch.argsort(starts, stable=True)
        chunks = [chunk for chunk in torch.tensor_split(order, c.buckets) if chunk.numel()]
        alpha = torch.ones(len(links), dtype=torch.float64)
        rates = []
        for chunk in chunks:
            alpha = self._fit_bucket(alpha, chunk, users, times, window, links)
            rates.append(alpha.clone())
        self.set_rates(links, rates[-1])
        self.bucket_rates = torch.stack(rates).float().to(self.rate.device)
        self.bucket_starts = torch.stack([starts[ch[0]] for ch in chunks]).to(self.rate.device)
        self.fit_seconds.fill_(time.perf_counter() - started)
        log.info("infopath: %d links, %d buckets, fitted in %.1f s", len(links), len(chunks),
                 self.fit_seconds.item())

    def _fit_bucket(self, alpha, chunk, users, times, window, links) -> torch.Tensor:
        """``epochs`` passes over one bucket's cascades (``chunk``: their indices), in fixed
        random mini-batches visited in a new order each pass (drawn from torch's global
        generator, which the trainer's --seed seeds)."""
        c = self.config
        pick = (lambda idx: ([users[i] for i in idx], [times[i] for i in idx]))
        whole = netrate_terms(*pick(chunk.tolist()), window, links)
        parts = torch.split(chunk[torch.randperm(chunk.numel())], c.batch_size)
        batches = [netrate_terms(*pick(p.tolist()), window, links) for p in parts]
        scale = 1.0 / whole.linear.clamp_min(1.0 / c.max_rate)
        # A link the bucket informs, ruled out by an earlier one, may come back.
        alpha = torch.where(whole.linear > 0, alpha.clamp_min(c.restart), alpha)
        for _ in range(c.epochs):
            for k in torch.randperm(len(batches)).tolist():
                alpha = scaled_step(alpha, batches[k], scale, c.lr, c.max_rate)
        log.info("infopath: bucket of %d cascades, log-likelihood %.1f", chunk.numel(),
                 log_likelihood(alpha, whole).item())
        return alpha

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(users={self.n_users}, links={self.rate.numel()}, "
                f"buckets={self.bucket_rates.shape[0]}, window={self.window.item():.3g})")
