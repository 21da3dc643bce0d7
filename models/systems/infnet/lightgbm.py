"""LightGBM on the LR baseline's engineered features (``models.systems.infnet.features``).

Gradient-boosted trees :math:`y' = \\sigma(\\sum_m f_m(\\phi(q)))` in place of the linear model.
"""

from __future__ import annotations

from models.base import register_model
from models.baselines import LightGBMConfig, lightgbm_classifier
from models.systems.infnet.lr import InfNetSklearn


@register_model("infnet", "lightgbm")
class LightGBMBaseline(InfNetSklearn):
    """Args (``Config``): n_estimators (200), learning_rate (0.05), num_leaves (31),
    min_child_samples (20), seed (0).

    Shapes: predict(batch) -> (Q,) probabilities.
    """

    Config = LightGBMConfig

    def make_estimator(self):
        return lightgbm_classifier(self.config)
