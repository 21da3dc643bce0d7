"""Training throughput of models.train with 1 and 2 processes (gloo on CPU, NCCL on GPU).

    python benchmarks/trainer_throughput.py [--examples 20000] [--dim 256] [--epochs 2]

A synthetic task (an MLP classifier on random features) is registered here, so the figure is
the trainer's own overhead plus DDP's gradient all-reduce, not any shard reader. Prints training
examples (queries) per second for each world size.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.base import ShardModel, Task, register_model, register_task  # noqa: E402
from models.train import TrainConfig, train  # noqa: E402


@register_task("bench")
class BenchTask(Task):
    primary_metric = "neg_loss"

    @dataclasses.dataclass
    class Options:
        n: int = 20000  #: examples
        dim: int = 256  #: features

    def __init__(self, lake, dataset=None, **options):
        super().__init__(lake, dataset, **options)
        self.n, self.dim = int(options["n"]), int(options["dim"])
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(self.n, self.dim, generator=gen)
        self.y = torch.randint(0, 2, (self.n,), generator=gen).float()

    def meta(self):
        return {"dim": self.dim}

    def load_split(self, split):
        rows = range(self.n) if split == "train" else range(256)
        return [(self.x[i], self.y[i]) for i in rows]

    def collate(self, examples):
        x = torch.stack([e[0] for e in examples])
        return {"x": x, "y": torch.stack([e[1] for e in examples])}

    def evaluate(self, model, examples, device):
        batch = self.collate(list(examples))
        return {"neg_loss": -model.loss(batch).item()}


@register_model("bench", "mlp")
class BenchMLP(ShardModel):
    @dataclasses.dataclass
    class Config:
        hidden: int = 512

    def __init__(self, config, meta):
        super().__init__(config, meta)
        self.net = nn.Sequential(
            nn.Linear(meta["dim"], config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1)
        )

    def loss(self, batch):
        logits = self.net(batch["x"]).squeeze(-1)
        return nn.functional.binary_cross_entropy_with_logits(logits, batch["y"])

    def predict(self, batch):
        return torch.sigmoid(self.net(batch["x"]).squeeze(-1))


def _worker(rank, world, port, cfg):
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    train(cfg)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--worlds", default="1,2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for world in [int(w) for w in args.worlds.split(",")]:
            cfg = TrainConfig(
                lake=f"{tmp}/lake", task="bench", model="mlp", epochs=args.epochs,
                batch_size=args.batch_size, seed=0, patience=0, out=f"{tmp}/w{world}",
                run_id=f"bench-w{world}",
                opts={"n": str(args.examples), "dim": str(args.dim)},
            )
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            started = time.perf_counter()
            mp.spawn(_worker, args=(world, port, cfg), nprocs=world, join=True)
            wall = time.perf_counter() - started
            qps = args.examples * args.epochs / wall
            print(
                f"world={world} examples={args.examples} epochs={args.epochs} "
                f"batch={args.batch_size} wall_s={wall:.2f} queries_per_s={qps:.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
