"""LR: logistic regression on engineered features, the paper's first baseline (Sec. 5.1).

:math:`y' = \\sigma(w^\\top \\phi(q) + b)` with :math:`\\phi(q)` the cost, graph and sharing-history
features of ``models.systems.infnet.features`` (standardised), fitted by scikit-learn in one shot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from models.base import Task, register_model
from models.baselines import SklearnBaseline
from models.systems.infnet.features import query_features, split_features


class InfNetSklearn(SklearnBaseline):
    """A one-shot classifier over the engineered query features (``features``)."""

    def train_features(self, examples: Sequence[Any], task: Task):
        return split_features(examples, task, self.meta)

    def batch_features(self, batch: dict[str, Any]):
        return query_features(batch, self.meta).cpu().numpy()


@register_model("infnet", "lr")
class LogisticRegressionBaseline(InfNetSklearn):
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
