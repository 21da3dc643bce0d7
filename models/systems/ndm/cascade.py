"""What every next-user model of the NDM task shares (NDM, the LSTM and co-occurrence baselines).

The vocabulary: users 0..|U|-1, Terminate = |U|, padding = |U|+1; predictions are
log-probabilities over V = |U| + 1 with the users already in each prefix masked out (Sec. 4.5 of
the NDM paper). ``NextUserModel`` holds the vocabulary, the masking and the state re-indexing of
the simulation protocol (``models.systems.ndm.simulation.Simulable``); ``CascadeModel`` adds the
user embedding table and the Eq. (8) loss for models trained by gradient descent.

Shapes:
    users: (B, L) user ids, padded with |U|+1.
    log_probs(users), predict(batch): (B, L, V) log-probabilities, infected users at -inf.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.base import ShardModel
from models.systems.ndm.simulation import reorder_state


def infected_mask(users: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, L) prefixes -> (B, L, vocab) bool: True where the user is in u_0 .. u_j.

    Ids >= vocab (padding) infect nobody.
    """
    batch, length = users.shape
    pos = torch.arange(length, device=users.device).expand(batch, length)
    first = torch.full((batch, vocab + 1), length, dtype=torch.long, device=users.device)
    ids = users.clamp(max=vocab)  # padding -> the spare column, dropped below
    first.scatter_reduce_(1, ids, pos, reduce="amin")
    return first[:, None, :vocab] <= pos[:, :, None]


class NextUserModel(ShardModel):
    """A model of the next infected user: the vocabulary, ``predict`` = ``log_probs(users)``
    (which subclasses define), and ``reorder`` for simulation states that are dicts of
    per-simulation tensors. Subclasses add ``begin`` and ``extend`` to be simulated.

    Args:
        config: the model's Config instance.
        meta: ``NdmTask.meta()`` (``n_users`` is read).
    """

    def __init__(self, config: Any, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.n_users = int(meta["n_users"])
        self.vocab = self.n_users + 1  # users + Terminate
        self.terminate = self.n_users
        self.pad = self.n_users + 1

    def masked_log_softmax(self, scores: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """(B, L, V) scores of each prefix of ``users`` (B, L) -> log-probabilities with the
        prefix's users at -inf."""
        scores = scores.masked_fill(infected_mask(users, self.vocab), float("-inf"))
        return torch.log_softmax(scores, dim=-1)

    def log_probs(self, users: torch.Tensor) -> torch.Tensor:
        """(B, L) users -> (B, L, V) next-user log-probabilities at every prefix."""
        raise NotImplementedError

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.log_probs(batch["users"])

    reorder = staticmethod(reorder_state)


class CascadeModel(NextUserModel):
    """A next-user model trained by gradient descent: a user embedding table (padding row zero)
    and the Eq. (8) loss, the mean negative log-likelihood of every next user.

    Args:
        config: the model's Config instance.
        meta: ``NdmTask.meta()``.
        dim: the embedding size.
    """

    def __init__(self, config: Any, meta: dict[str, Any], dim: int):
        super().__init__(config, meta)
        self.emb = nn.Embedding(self.n_users + 2, dim, padding_idx=self.pad)

    def reset_embedding(self) -> None:
        nn.init.normal_(self.emb.weight, std=0.1)
        with torch.no_grad():
            self.emb.weight[self.pad].zero_()

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        logp = self.log_probs(batch["users"])  # Eq. (8), as a mean negative log-likelihood
        return F.nll_loss(logp.flatten(0, 1), batch["targets"].flatten(), ignore_index=-100)
