"""LightGBM on the LR baseline's engineered features (``models.systems.infnet.features``).

Gradient-boosted trees :math:`y' = \\sigma(\\sum_m f_m(\\phi(q)))` in place of the linear model.
"""

from __future__ import annotations

import dataclasses

from models.base import register_model
from models.baselines import lightgbm_classifier
from models.systems.infnet.lr import InfNetSklearn


@register_model("infnet", "lightgbm")
class LightGBMBaseline(InfNetSklearn):
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
        return lightgbm_classifier(self.config)
