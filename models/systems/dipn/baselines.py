"""The DIPN paper's baselines (Sec. 6.1, Table 4): RNN+DNN on the browse view, and GBDT on
per-sample summaries of all three views.

* ``rnn_dnn`` ([19] of the paper): a Bi-GRU over the browse events alone; its last states,
  joined with the embedded history and profile, go through a DNN into the two heads.
* ``gbdt`` ([15] of the paper, with the history and profile added as the paper does): one
  LightGBM booster per trained head on ``summary_features``: for each view the events in the
  last 1 min / 10 min / 1 h / whole sequence and the age of its latest event, the share of
  each action, event, button, type and page id among its events, the mean gap, duration and
  stay buckets; then the history ids and the profile ids (categorical). ``fit`` collates the
  training split in chunks and reads the same features from the batches that ``predict`` gets.
* ``timing``, a control rather than a paper's baseline: the same booster on the part of those
  features that says *when* and *how much* the user acted and who she is (per view the event
  counts and the latest event's age, the history, the profile) and nothing of *what* the
  events were. Whatever it scores comes from activity and timing; a model's edge over it is
  what the sequences' content adds (on a generated world: E8's planted intent).
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from contracts import dipn as contract
from models.base import OptionError, Task, register_model
from models.baselines import LightGBMConfig, SklearnBaseline, lightgbm_classifier
from models.systems.dipn.dipn import SOURCES, BiGRU, GroupEmbedding, TwoHeadModel, mlp_head
from models.systems.dipn.task import FEATURES, HEADS, VIEWS

#: Windows of the event counts, in ms before tau (None: the whole sequence).
WINDOWS = {"1min": 60_000, "10min": 600_000, "1h": 3_600_000, "all": None}
#: The id features whose shares are counted, per view.
SHARES = {"swipe": ("action", "page"), "tap": ("event", "page", "button"),
          "browse": ("type", "page")}
#: The bucket features averaged over the events where they apply (id > 0).
MEANS = {"swipe": ("gap", "duration"), "tap": (), "browse": ("stay",)}
CHUNK = 1024


def feature_names(content: bool = True, sources: Sequence[str] = SOURCES) -> list[str]:
    """Names of the columns of ``summary_features`` (``content=False``: of the timing
    control's; ``sources``: the views and groups kept)."""
    names = []
    for view in (v for v in VIEWS if v in sources):
        names += [f"{view}_events_{w}" for w in WINDOWS]
        names.append(f"{view}_latest_age_s")
        if not content:
            continue
        for feature in SHARES[view]:
            size = contract.VOCAB[f"{view}.{feature}"]
            names += [f"{view}_{feature}_{i}_share" for i in range(1, size)]
        names += [f"{view}_{feature}_mean" for feature in MEANS[view]]
    for group in ("history", "profile"):
        if group in sources:
            names += FEATURES[group]
    return names


def _shares(ids: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """(B, L) ids -> (B, size - 1): the share of ids 1..size-1 among each row's events."""
    counts = np.zeros((len(ids), size))
    rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
    np.add.at(counts, (rows[mask], ids[mask]), 1.0)
    return counts[:, 1:] / np.maximum(mask.sum(1, keepdims=True), 1)


@torch.no_grad()
def summary_features(batch: dict[str, Any], content: bool = True,
                     sources: Sequence[str] = SOURCES) -> np.ndarray:
    """A collated batch -> (B, len(feature_names(content, sources))) float64 (NaN: a mean, or
    the latest age, over no event). Sequences are right-aligned: the last position is the
    latest event."""
    columns = []
    for view in (v for v in VIEWS if v in sources):
        x = batch[view].cpu().numpy()
        mask = batch[f"{view}_mask"].cpu().numpy()
        age = batch[f"{view}_age"].cpu().numpy()
        for window in WINDOWS.values():
            inside = mask if window is None else mask & (age <= window)
            columns.append(inside.sum(1, keepdims=True).astype(np.float64))
        latest = np.where(mask[:, -1:], age[:, -1:] / 1000.0, np.nan)
        columns.append(latest.astype(np.float64))
        if not content:
            continue
        for feature in SHARES[view]:
            j = FEATURES[view].index(feature)
            columns.append(_shares(x[..., j], mask, contract.VOCAB[f"{view}.{feature}"]))
        for feature in MEANS[view]:
            values = x[..., FEATURES[view].index(feature)]
            applies = mask & (values > 0)
            total = np.where(applies, values, 0).sum(1, keepdims=True).astype(np.float64)
            count = applies.sum(1, keepdims=True)
            columns.append(np.divide(total, count, out=np.full_like(total, np.nan),
                                     where=count > 0))
    columns += [batch[g].cpu().numpy() for g in ("history", "profile") if g in sources]
    return np.concatenate([c.astype(np.float64) for c in columns], 1)


@register_model("dipn", "gbdt")
class GBDT(SklearnBaseline):
    """One LightGBM booster per trained head on ``summary_features``.

    Args (``Config``): n_estimators (200), learning_rate (0.05), num_leaves (31),
    min_child_samples (20), seed (0); sources (the views and groups summarised, any of
    swipe, tap, browse, history, profile; default all: the paper's Table 6 rows for GBDT).

    Shapes: predict(batch) -> (B, H) probabilities, one column per trained head.
    """

    @dataclasses.dataclass
    class Config(LightGBMConfig):
        sources: list[str] = dataclasses.field(default_factory=lambda: list(SOURCES))

        def __post_init__(self) -> None:
            unknown = sorted(set(self.sources) - set(SOURCES))
            if unknown or not self.sources:
                raise OptionError(f"GBDT.Config sources must be a non-empty subset of "
                                  f"{','.join(SOURCES)}, got {','.join(self.sources)}")

    #: Whether the summaries describe what the events were (False: the timing control).
    content = True

    def __init__(self, config: Any, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.trained = [HEADS.index(h) for h in meta.get("heads", HEADS)]

    def make_estimator(self):
        return lightgbm_classifier(self.config)

    def train_features(self, examples: Sequence[Any], task: Task
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(x, y): features and (n, 2) labels of ``examples``, collated ``CHUNK`` at a time."""
        xs, ys = [], []
        for start in range(0, len(examples), CHUNK):
            batch = task.collate(list(examples[start:start + CHUNK]))
            xs.append(self.batch_features(batch))
            ys.append(np.stack([batch[f"y_{h}"].numpy() for h in HEADS], 1))
        if not xs:
            width = len(feature_names(self.content, self.config.sources))
            return np.zeros((0, width)), np.zeros((0, len(HEADS)))
        return np.concatenate(xs), np.concatenate(ys).astype(np.int64)

    def batch_features(self, batch: dict[str, Any]) -> np.ndarray:
        return summary_features(batch, self.content, self.config.sources)

    def fit_kwargs(self, x: np.ndarray) -> dict[str, Any]:
        profile = len(FEATURES["profile"]) if "profile" in self.config.sources else 0
        return {"feature_name": feature_names(self.content, self.config.sources),
                "categorical_feature": list(range(x.shape[1] - profile, x.shape[1]))}

    def fit(self, examples: Sequence[Any], task: Task) -> None:
        x, y = self.train_features(examples, task)
        boosters = []
        for j in self.trained:
            if len(set(y[:, j].tolist())) < 2:
                raise ValueError(f"{self.name}: the training split holds a single class of "
                                 f"label_{HEADS[j]}")
            boosters.append(self.make_estimator().fit(x, y[:, j], **self.fit_kwargs(x)))
        self.estimator = boosters
        self.fitted = torch.frombuffer(bytearray(pickle.dumps(boosters)), dtype=torch.uint8)

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.estimator is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        x = self.batch_features(batch)
        with warnings.catch_warnings():  # LightGBM's sklearn wrapper warns on any numpy input
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            proba = np.stack([b.predict_proba(x)[:, 1] for b in self.estimator], 1)
        return torch.from_numpy(proba).float()  # (B, H)


@register_model("dipn", "timing")
class Timing(GBDT):
    """The timing control: ``GBDT`` on ``summary_features(batch, content=False)``, the event
    counts and latest ages of each view with the history and the profile; it cannot see a
    page, a button, an action or a stay.

    Args (``Config``): those of ``GBDT``. Shapes: as ``GBDT``.
    """

    content = False


@register_model("dipn", "rnn_dnn")
class RnnDnn(TwoHeadModel):
    """RNN+DNN: a Bi-GRU over the browse events; its last states with the embedded history and
    profile through a DNN, then the real-time and long-term heads.

    Args (``Config``):
        hidden (int): each GRU direction's state. (default: 32)
        fc (int): width of the FC after each group's embeddings. (default: 64)
        dnn (int): width of the shared DNN layer. (default: 64)
        head_hidden (int): hidden width of each head's MLP. (default: 64)
        dropout (float): after the DNN layer and in the heads. (default: 0.1)

    Shapes: ``logits`` -> (B, 2); ``predict`` -> (B, H) probabilities.
    """

    @dataclasses.dataclass
    class Config:
        hidden: int = 32
        fc: int = 64
        dnn: int = 64
        head_hidden: int = 64
        dropout: float = 0.1

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config
        self.embed = nn.ModuleDict({g: GroupEmbedding(g, c.fc)
                                    for g in ("browse", "history", "profile")})
        self.rnn = BiGRU(c.fc, c.hidden)
        self.dnn = nn.Sequential(nn.Linear(2 * c.hidden + 2 * c.fc, c.dnn), nn.ReLU(),
                                 nn.Dropout(c.dropout))
        self.heads = nn.ModuleList(mlp_head(c.dnn, c.head_hidden, c.dropout) for _ in HEADS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        _, last = self.rnn(self.embed["browse"](batch["browse"]), batch["browse_mask"])
        z = self.dnn(torch.cat([last, self.embed["history"](batch["history"]),
                                self.embed["profile"](batch["profile"])], -1))
        return torch.cat([head(z) for head in self.heads], -1)  # (B, 2)

    def __repr__(self) -> str:
        c = self.config
        return f"{self.__class__.__name__}(hidden={c.hidden}, fc={c.fc}, dnn={c.dnn})"
