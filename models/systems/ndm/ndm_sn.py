"""NDM+SN: NDM with half of each user embedding fixed to DeepWalk embeddings of a social network
(Yang et al., "Neural Diffusion Model for Microscopic Cascade Study", Sec. 5.4).

Everything is NDM (``models.systems.ndm.ndm``, Eq. (1)-(8)) except the user embedding:

    emb(u) = [ s * dw(u) || e(u) ],   dw(u), e(u) in R^{d/2}

where dw(u) is u's DeepWalk embedding of the social graph (``models.systems.ndm.deepwalk``;
d/2 = 32 of d = 64 in the paper), fixed during training (a buffer, no gradient), and e(u) is
learned as in NDM. The paper initialises the first d/2 coordinates with DeepWalk and freezes
them; here the DeepWalk block is rescaled by one scalar s so that its root mean square over the
users in the graph is ``social_std`` (default 0.1, the standard deviation e starts at): NDM's
Eq. (4) has no 1/sqrt(d) and its residual adds emb(u) before the layer norm, so the fixed half
should start on the learned half's scale (skip-gram vectors are an order of magnitude larger).
Users without an edge in the graph, Terminate and padding get a zero fixed half; Terminate's
learned half is learned, padding's stays zero (as NDM's padding row).

The graph: ``meta["social"]()`` -> (src, dst, weight) over the dense user ids, from
``NdmTask.social_edges`` (``shards/ndm/<dataset>_social``: a generated world's share graph of
the training period). DeepWalk reads it undirected and unweighted. A dataset without the table
gets a ``FileNotFoundError`` naming it. The DeepWalk run is deterministic for ``walk_seed`` and
happens once per constructed model (also when a checkpoint is loaded, before its buffer
replaces the result).

Args (``NDMSN.Config``): NDM's (``dim`` must be even) and
    social_std: RMS of the fixed half over users in the graph (default 0.1); 0 keeps the raw
        DeepWalk values, as the paper does.
    walk_length, walks_per_node, window, negatives, walk_epochs, walk_batch_size, walk_lr,
    walk_seed: ``deepwalk.WalkConfig``'s ``walk_length`` (40), ``walks_per_node`` (10),
        ``window`` (5), ``negatives`` (5), ``epochs`` (1), ``batch_size`` (8192), ``lr``
        (0.01) and ``seed`` (0).

Shapes: as NDM; ``emb.fixed``: (|U| + 2, d/2), ``emb.learned``: (|U| + 2, d/2).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.base import OptionError, register_model
from models.systems.ndm.deepwalk import WalkConfig, deepwalk
from models.systems.ndm.ndm import NDM

log = logging.getLogger(__name__)


class HalfFixedEmbedding(nn.Module):
    """An embedding table [fixed || learned]: ``fixed`` a buffer, ``learned`` a parameter.

    ``weight`` is the (rows, d) concatenation, so code that reads ``emb.weight`` (NDM's
    simulation tables) sees the whole table; ``forward`` looks rows up in both halves.

    Args:
        fixed: (rows, d_fixed) the fixed half.
        dim: d, the full width.
        padding_idx: the row whose learned half stays zero and gets no gradient.
    """

    def __init__(self, fixed: torch.Tensor, dim: int, padding_idx: int):
        super().__init__()
        self.padding_idx = padding_idx
        self.register_buffer("fixed", fixed.clone())
        self.learned = nn.Parameter(torch.empty(fixed.shape[0], dim - fixed.shape[1]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.learned, std=0.1)  # as CascadeModel.reset_embedding
        with torch.no_grad():
            self.learned[self.padding_idx].zero_()

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([self.fixed, self.learned], dim=-1)  # (rows, d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        fixed = F.embedding(ids, self.fixed)  # (..., d_fixed)
        learned = F.embedding(ids, self.learned, padding_idx=self.padding_idx)
        return torch.cat([fixed, learned], dim=-1)  # (..., d)

    def __repr__(self) -> str:
        rows, half = self.fixed.shape
        return f"{type(self).__name__}({rows}, fixed={half}, learned={self.learned.shape[1]})"


def social_graph(meta: dict[str, Any]):
    """``meta["social"]()`` (src, dst, weight), or an error naming the missing table."""
    source = meta.get("social")
    graph = source() if callable(source) else source
    if graph is None:
        table = meta.get("social_table", "shards/ndm/<dataset>_social")
        raise FileNotFoundError(
            f"model 'ndm_sn' needs the dataset's social graph, but {table} does not exist: "
            "`python -m jobs.build_shards --task ndm` writes it for a generated world; "
            "imported cascade files have none"
        )
    return graph


@register_model("ndm", "ndm_sn")
class NDMSN(NDM):
    @dataclasses.dataclass
    class Config(NDM.Config):
        social_std: float = 0.1
        walk_length: int = 40
        walks_per_node: int = 10
        window: int = 5
        negatives: int = 5
        walk_epochs: int = 1
        walk_batch_size: int = 8192
        walk_lr: float = 0.01
        walk_seed: int = 0

    def __init__(self, config: Config, meta: dict[str, Any]):
        if config.dim % 2:
            raise OptionError(f"model 'ndm_sn' needs an even dim (half fixed), got {config.dim}")
        src, dst, _ = social_graph(meta)
        super().__init__(config, meta)
        self.emb = HalfFixedEmbedding(self.social_half(src, dst), config.dim, self.pad)
        self.reset_parameters()

    def social_half(self, src, dst) -> torch.Tensor:
        """(|U| + 2, d/2): s * DeepWalk(graph) for the users, zero for Terminate and padding."""
        c = self.config
        walk = WalkConfig(dim=c.dim // 2, walk_length=c.walk_length,
                          walks_per_node=c.walks_per_node, window=c.window,
                          negatives=c.negatives, epochs=c.walk_epochs,
                          batch_size=c.walk_batch_size, lr=c.walk_lr, seed=c.walk_seed)
        started = time.time()
        dw = deepwalk(src, dst, self.n_users, walk)  # (|U|, d/2), zero rows off the graph
        in_graph = dw.abs().sum(-1) > 0
        if in_graph.any() and c.social_std > 0:
            rms = dw[in_graph].pow(2).mean().sqrt()
            dw = dw * (c.social_std / rms)
        log.info("ndm_sn: DeepWalk of %d edges, %d of %d users in the graph, %.1f s",
                 len(src), int(in_graph.sum()), self.n_users, time.time() - started)
        return torch.cat([dw, torch.zeros(2, dw.shape[1])])  # + Terminate, padding rows

    def reset_embedding(self) -> None:
        # NDM.__init__ resets a plain table first; the half-fixed one resets its learned half.
        if isinstance(self.emb, HalfFixedEmbedding):
            self.emb.reset_parameters()
        else:
            super().reset_embedding()
