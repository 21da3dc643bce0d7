"""TensorBoard event files of a training run (``--tensorboard DIR``), written by rank 0.

Scalars, one point per epoch (the step is the epoch number):

* ``train/loss``: the epoch's mean training loss over all ranks;
* ``train/lr``: the learning rate of the epoch's last step;
* ``train/examples_per_s``: training throughput, all ranks together;
* ``val/<metric>``: every metric the task reports on val;
* ``test/<metric>``: the chosen weights' test metrics, once, at the last epoch trained.

Models fitted in one shot (``trainable = False``) have only epoch 0's val and test points.
A resumed run purges the points at or after its first epoch, so the epoch a killed worker had
not checkpointed is not drawn twice.
"""

from __future__ import annotations

from typing import Any


class TrainingBoard:
    """A ``SummaryWriter`` that knows the trainer's history entries.

    Args:
        log_dir: folder of the event files (created when missing).
        purge_step: on resumption, the first epoch this run trains (None for a fresh run).
    """

    def __init__(self, log_dir: str, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=log_dir, purge_step=purge_step)

    def epoch(self, entry: dict[str, Any]) -> None:
        """One history entry: ``{"epoch", "train_loss", "lr", "train_examples_per_s", "val"}``
        (the training keys are absent for one-shot models)."""
        step = entry["epoch"]
        for key, tag in (
            ("train_loss", "train/loss"),
            ("lr", "train/lr"),
            ("train_examples_per_s", "train/examples_per_s"),
        ):
            if key in entry:
                self.writer.add_scalar(tag, entry[key], step)
        for metric, value in sorted(entry["val"].items()):
            self.writer.add_scalar(f"val/{metric}", value, step)
        self.writer.flush()

    def final(self, split: str, metrics: dict[str, float], step: int) -> None:
        """The metrics of the chosen weights on ``split``, at ``step``."""
        for metric, value in sorted(metrics.items()):
            self.writer.add_scalar(f"{split}/{metric}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
