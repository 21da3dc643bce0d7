"""A toy task for the trainer's tests: logistic regression on fixed random data.

The toy task and its models register themselves on import, so the trainer is tested through
exactly the registries and contract real tasks use. Run as a module it is ``models.train``'s
command line with the toy task registered (``torchrun ... -m tests.models.toy ...``).

``TOY_CRASH_AT_STEP=N`` with ``TOY_CRASH_MARKER=PATH`` make rank 0 die (``os._exit``) in its
N-th training step, unless PATH exists; it creates PATH first, so a restarted worker runs on.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.base import ShardModel, Task, register_model, register_task

CRASH_EXIT_CODE = 3
_steps_taken = 0


@register_task("toy")
class ToyTask(Task):
    """n examples x in R^dim, y = 1[x . w* + noise > 0]; splits are fixed slices."""

    primary_metric = "neg_logloss"

    @dataclasses.dataclass
    class Options:
        n: int = 64
        dim: int = 5
        data_seed: int = 123

    def __init__(self, lake, dataset=None, **options):
        super().__init__(lake, dataset, **options)
        self.n = int(options.get("n", 64))
        self.dim = int(options.get("dim", 5))
        gen = torch.Generator().manual_seed(int(options.get("data_seed", 123)))
        total = self.n + 32
        self.x = torch.randn(total, self.dim, generator=gen)
        w = torch.randn(self.dim, generator=gen)
        self.y = ((self.x @ w + 0.5 * torch.randn(total, generator=gen)) > 0).float()

    def meta(self):
        return {"dim": self.dim}

    def load_split(self, split):
        bounds = {"train": (0, self.n), "val": (self.n, self.n + 16), "test": (self.n + 16, None)}
        lo, hi = bounds[split]
        return [(self.x[i], self.y[i]) for i in range(lo, hi or len(self.y))]

    def collate(self, examples):
        return {
            "x": torch.stack([e[0] for e in examples]),
            "y": torch.stack([e[1] for e in examples]),
        }

    def metric_sums(self, model, examples, device):
        if not examples:
            return {"n": 0.0, "nll": 0.0, "correct": 0.0}
        batch = self.collate(list(examples))
        p = model.predict(batch).clamp(1e-7, 1 - 1e-7)
        y = batch["y"]
        nll = -(y * p.log() + (1 - y) * (1 - p).log())
        return {
            "n": float(len(y)),
            "nll": nll.sum().item(),
            "correct": ((p > 0.5).float() == y).sum().item(),
        }

    def metrics_from_sums(self, sums):
        return {"neg_logloss": -sums["nll"] / sums["n"], "accuracy": sums["correct"] / sums["n"]}

    def evaluate(self, model, examples, device):
        return self.metrics_from_sums(self.metric_sums(model, examples, device))

    def example_scores(self, model, examples, device):
        batch = self.collate(list(examples))
        return {"example_id": np.arange(len(examples)), "label": batch["y"].numpy(),
                "score": model.predict(batch).numpy()}


def _maybe_crash() -> None:
    global _steps_taken
    _steps_taken += 1
    at, marker = os.environ.get("TOY_CRASH_AT_STEP"), os.environ.get("TOY_CRASH_MARKER")
    if at is None or marker is None or os.environ.get("RANK", "0") != "0":
        return
    if _steps_taken == int(at) and not Path(marker).exists():
        Path(marker).write_text(f"crashed in step {_steps_taken}\n")
        os._exit(CRASH_EXIT_CODE)


@register_model("toy", "logreg")
class ToyLogReg(ShardModel):
    @dataclasses.dataclass
    class Config:
        dropout: float = 0.0

    def __init__(self, config, meta):
        super().__init__(config, meta)
        self.linear = nn.Linear(meta["dim"], 1)
        self.drop = nn.Dropout(config.dropout)

    def logits(self, batch):
        return self.linear(self.drop(batch["x"])).squeeze(-1)

    def loss(self, batch):
        _maybe_crash()
        return nn.functional.binary_cross_entropy_with_logits(self.logits(batch), batch["y"])

    def predict(self, batch):
        return torch.sigmoid(self.logits(batch))


@register_model("toy", "prior")
class ToyPrior(ShardModel):
    """Predicts the training base rate for everyone (fitted once)."""

    trainable = False

    def __init__(self, config, meta):
        super().__init__(config, meta)
        self.register_buffer("rate", torch.tensor(0.5))

    def fit(self, examples, task):
        self.rate.fill_(torch.stack([e[1] for e in examples]).mean().item())

    def predict(self, batch):
        return self.rate.expand(len(batch["y"]))


if __name__ == "__main__":
    from models.train import main

    sys.exit(main())
