"""One-shot scikit-learn-style baselines shared by every system (LR, LightGBM).

A system's baseline subclasses :class:`SklearnBaseline` and says how its examples and its
batches become a feature matrix; fitting, the checkpoint round trip and scoring live here.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from models.base import ShardModel, Task


class SklearnBaseline(ShardModel):
    """A classifier fitted in one shot on engineered features (``trainable = False``).

    Subclasses define ``make_estimator()``, ``train_features(examples, task) -> (x, y)`` and
    ``batch_features(batch) -> x``, and may pass ``fit_kwargs(x)`` to the estimator's ``fit``.
    The fitted estimator is pickled into a ``uint8`` buffer so it travels in the state dict.
    """

    trainable = False

    def __init__(self, config: Any, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.estimator = None
        self.register_buffer("fitted", torch.zeros(0, dtype=torch.uint8))

    def make_estimator(self):
        raise NotImplementedError

    def train_features(self, examples: Sequence[Any], task: Task) -> tuple[np.ndarray,
                                                                          np.ndarray]:
        raise NotImplementedError

    def batch_features(self, batch: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def fit_kwargs(self, x: np.ndarray) -> dict[str, Any]:
        return {}

    def fit(self, examples: Sequence[Any], task: Task) -> None:
        x, y = self.train_features(examples, task)
        if len(set(np.asarray(y).tolist())) < 2:
            raise ValueError(f"{self.name}: the training split holds a single class")
        self.estimator = self.make_estimator().fit(x, y, **self.fit_kwargs(x))
        blob = pickle.dumps(self.estimator)
        self.fitted = torch.frombuffer(bytearray(blob), dtype=torch.uint8)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        blob = state_dict.get(prefix + "fitted")
        if blob is not None:
            self.fitted = torch.empty_like(blob)  # sized to the checkpoint, then copied into
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.fitted.numel():
            self.estimator = pickle.loads(self.fitted.cpu().numpy().tobytes())

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.estimator is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        proba = self.estimator.predict_proba(self.batch_features(batch))[:, 1]
        return torch.from_numpy(proba).float()

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        raise RuntimeError(f"{self.name} is fitted in one shot (trainable = False)")


@dataclasses.dataclass
class LightGBMConfig:
    """The gradient-boosting settings every system's LightGBM baseline takes."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    seed: int = 0


def lightgbm_classifier(config: Any, **extra: Any):
    """An ``LGBMClassifier`` from a Config with n_estimators, learning_rate, num_leaves,
    min_child_samples and seed (one thread, quiet); ``extra`` adds settings."""
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=config.n_estimators,
        learning_rate=config.learning_rate,
        num_leaves=config.num_leaves,
        min_child_samples=config.min_child_samples,
        random_state=config.seed,
        n_jobs=1,
        verbose=-1,
        **extra,
    )
