"""LR: logistic regression on engineered features, the paper's first baseline (Sec. 5.1).

:math:`y' = \\sigma(w^\\top \\phi(q) + b)` with :math:`\\phi(q)` the cost, graph and sharing-history
features of ``models.systems.infnet.features`` (standardised), fitted by scikit-learn in one shot.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Sequence
from typing import Any

import torch

from models.base import ShardModel, Task, register_model
from models.systems.infnet.features import query_features, split_features


class SklearnBaseline(ShardModel):
    """A one-shot scikit-learn-style classifier over the engineered query features.

    The fitted estimator is pickled into a ``uint8`` buffer so it travels in the state dict.
    """

    trainable = False

    def __init__(self, config: Any, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.estimator = None
        self.register_buffer("fitted", torch.zeros(0, dtype=torch.uint8))

    def make_estimator(self):
        raise NotImplementedError

    def fit(self, examples: Sequence[Any], task: Task) -> None:
        x, y = split_features(examples, task, self.meta)
        if len(set(y.tolist())) < 2:
            raise ValueError(f"{self.name}: the training split holds a single class")
        self.estimator = self.make_estimator().fit(x, y)
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
        x = query_features(batch, self.meta).cpu().numpy()
        return torch.from_numpy(self.estimator.predict_proba(x)[:, 1]).float()

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        raise RuntimeError(f"{self.name} is fitted in one shot (trainable = False)")


@register_model("infnet", "lr")
class LogisticRegressionBaseline(SklearnBaseline):
    """Args (``Config``): C (float): inverse L2 strength (default 1.0); max_iter (int) (1000).

    Shapes: predict(batch) -> (Q,) probabilities.
    """

    @dataclasses.dataclass
    class Config:
        C: float = 1.0
        max_iter: int = 1000

    def make_estimator(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=self.config.C, max_iter=self.config.max_iter),
        )
