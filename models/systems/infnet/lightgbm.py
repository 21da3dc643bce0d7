"""LightGBM on the LR baseline's engineered features (``models.systems.infnet.features``).

Gradient-boosted trees :math:`y' = \\sigma(\\sum_m f_m(\\phi(q)))` in place of the linear model.
"""

from __future__ import annotations

import dataclasses

from models.base import register_model
from models.systems.infnet.lr import SklearnBaseline


@register_model("infnet", "lightgbm")
class LightGBMBaseline(SklearnBaseline):
    """Args (``Config``): n_estimators (200), learning_rate (0.05), num_leaves (31),
    min_child_samples (20), seed (0).

    Shapes: predict(batch) -> (Q,) probabilities.
    """

    @dataclasses.dataclass
    class Config:
        n_estimators: int = 200
        learning_rate: float = 0.05
        num_leaves: int = 31
        min_child_samples: int = 20
        seed: int = 0

    def make_estimator(self):
        from lightgbm import LGBMClassifier

        c = self.config
        return LGBMClassifier(
            n_estimators=c.n_estimators,
            learning_rate=c.learning_rate,
            num_leaves=c.num_leaves,
            min_child_samples=c.min_child_samples,
            random_state=c.seed,
            n_jobs=1,
            verbose=-1,
        )
