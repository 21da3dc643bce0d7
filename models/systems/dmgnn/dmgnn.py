r"""DM-GNN: a TGAT encoder whose attention decays with an interaction's age, trained on link
prediction and consumption tiers at once.

Paper: "DM-GNN: Dynamic Multi-Task Graph Neural Network"
(``../shared/papers/dm-gnn-dynamic-multitask-gnn.txt``). Only its abstract is at hand; this is
our reading, as the code implements it:

* **Graph** (Sec. "temporal heterogeneous graph"): social interactions (share, repost, like,
  comment) are timestamped edges; consumption events (browse, cart, payment with amounts) are
  dynamic node attributes. A node's input at time t is
  :math:`h^{(0)}_v(t) = W_x \mathrm{LN}(x_v(t)) + E_v`, :math:`x_v(t)` its attribute
  summaries strictly before t (``graph.FEATURE_NAMES``, layer-normed as counts and amounts
  differ in scale), E a learned id embedding (``node_embedding``).
* **Time encoding** (TGAT): :math:`\Phi(\Delta t) = \cos(\omega \Delta t + b)`, learned
  :math:`\omega, b`, ages in the task's time unit (a day by default).
* **Temporal attention with decay**: node v at time t attends over its k most recent
  interactions before t, :math:`(u_j, t_j, c_j)`, with
  :math:`q = W_q[h_v \| \Phi(0)]`, :math:`k_j = W_k[h_{u_j}(t_j) \| e_{c_j} \| \Phi(t - t_j)]`,
  :math:`v_j = W_v[\cdot]` (e the embedding of the edge type and direction), and
  :math:`\alpha_j = \mathrm{softmax}_j(q^\top k_j / \sqrt{d_h} + \log e^{-\lambda (t - t_j)})`:
  the attention weight times :math:`e^{-\lambda \Delta t}`, renormalised (the paper's dynamic
  weight decay, the "recency effect"). :math:`\lambda = \mathrm{softplus}(\rho) \ge 0` is
  learned, one for the whole encoder, and reported (``decay_rate``); ``decay=False`` is TGAT.
  The heads' outputs are concatenated, projected, and merged with the node's own state by
  TGAT's FFN: :math:`h'_v = W_2 \mathrm{ReLU}(W_1 [\mathrm{attn} \| h_v])`.
* **Layers**: ``layers`` (the task's, 2 by default) such layers; a neighbour's state at layer
  l - 1 is computed at its interaction's time :math:`t_j` from its own neighbours before
  :math:`t_j` (TGAT's recursion), so nothing at or after the query time enters.
* **Multi-task heads**: link logit :math:`\mathrm{MLP}([z_u \| z_v])`; tier logits
  :math:`\mathrm{MLP}(z_u) \in \mathbb{R}^5`. :math:`L = L_{link} + \lambda_t L_{tier}`,
  :math:`L_{link}` the BCE of each positive and its fixed negative, :math:`L_{tier}` the
  cross-entropy of the tier at the window's end. Single-task training is the task's
  ``objective`` option (link or tier).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from contracts import dmgnn as contract
from models.base import OptionError, ShardModel, register_model
from models.systems.dmgnn.graph import NUM_EDGE_CODES, NUM_FEATURES


class TimeEncoder(nn.Module):
    """TGAT's functional time encoding :math:`\\cos(\\omega \\Delta t + b)`, with frequencies
    spread geometrically from 100 to 1e-3 per time unit at the start.

    Shapes: dt (...) -> (..., dim).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.omega = nn.Parameter(torch.empty(dim))
        self.phase = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.omega.copy_(torch.logspace(0, -3, self.dim))
            self.phase.zero_()

    def forward(self, dt: torch.Tensor) -> torch.Tensor:
        return torch.cos(dt[..., None] * self.omega + self.phase)


def decayed_attention(logits: torch.Tensor, dt: torch.Tensor, rate: torch.Tensor | float,
                      mask: torch.Tensor) -> torch.Tensor:
    """Attention weights ``softmax_j(logits_j - rate * dt_j)`` over the unmasked j: each
    weight times :math:`e^{-\\lambda \\Delta t}`, renormalised. All-masked rows give zeros.

    Shapes: logits (N, k, H), dt (N, k), mask (N, k) -> (N, k, H).
    """
    score = logits - (rate * dt)[..., None]
    score = score.masked_fill(~mask[..., None], float("-inf"))
    weights = torch.softmax(score, 1)
    return torch.nan_to_num(weights, nan=0.0)


class TemporalAttention(nn.Module):
    """One TGAT layer with the decayed attention (see the module docstring).

    Args:
        dim (int): state width in and out.
        edge_dim (int): width of the edge-code embedding.
        heads (int): attention heads (``dim`` divisible by it).

    Shapes: h_self (N, dim), h_nbr (N, k, dim), edge (N, k, edge_dim), dt (N, k), mask (N, k),
    time encodings given -> (N, dim).
    """

    def __init__(self, dim: int, edge_dim: int, heads: int, dropout: float):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.query = nn.Linear(2 * dim, dim)
        self.key = nn.Linear(2 * dim + edge_dim, dim)
        self.value = nn.Linear(2 * dim + edge_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(dim, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.query, self.key, self.value, self.out, *self.ffn):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, h_self, h_nbr, edge, phi_zero, phi_dt, dt, mask, rate):
        n, k, _ = h_nbr.shape
        d_head = self.dim // self.heads
        q = self.query(torch.cat([h_self, phi_zero.expand(n, -1)], -1)).view(n, 1, self.heads,
                                                                           d_head)
        context = torch.cat([h_nbr, edge, phi_dt], -1)  # (N, k, 2 dim + edge_dim)
        keys = self.key(context).view(n, k, self.heads, d_head)
        values = self.value(context).view(n, k, self.heads, d_head)
        logits = (q * keys).sum(-1) / math.sqrt(d_head)  # (N, k, H)
        weights = decayed_attention(logits, dt, rate, mask)
        attended = (weights[..., None] * values).sum(1).reshape(n, self.dim)
        return self.ffn(torch.cat([self.out(attended), h_self], -1))


class TemporalEncoder(nn.Module):
    """Node inputs and ``layers`` temporal attention layers over the batch's unrolled
    neighbourhoods (``models.systems.dmgnn.task``'s batch).

    Shapes: batch -> z (Q, dim), one row per query.
    """

    def __init__(self, num_nodes: int, dim: int, edge_dim: int, heads: int, layers: int,
                 k: int, dropout: float, decay: bool, decay_init: float, node_embedding: bool):
        super().__init__()
        self.k, self.num_layers, self.decay = k, layers, decay
        self.norm = nn.LayerNorm(NUM_FEATURES)
        self.features = nn.Linear(NUM_FEATURES, dim)
        self.ids = nn.Embedding(num_nodes, dim) if node_embedding else None
        self.edges = nn.Embedding(NUM_EDGE_CODES, edge_dim, padding_idx=0)
        self.time = TimeEncoder(dim)
        self.layers = nn.ModuleList(
            TemporalAttention(dim, edge_dim, heads, dropout) for _ in range(layers))
        self.decay_init = decay_init
        # lambda = softplus(rho); kept (and reported as 0) when decay is off
        self.rho = nn.Parameter(torch.empty(()), requires_grad=decay)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.norm, self.features, self.edges, self.time, *self.layers):
            module.reset_parameters()
        if self.ids is not None:
            self.ids.reset_parameters()
        with torch.no_grad():
            self.rho.fill_(math.log(math.expm1(max(self.decay_init, 1e-6))))

    def rate(self) -> torch.Tensor:
        """lambda, the decay per time unit (0 when decay is off)."""
        return F.softplus(self.rho) if self.decay else self.rho.new_zeros(())

    def inputs(self, batch: dict[str, Any], level: int) -> torch.Tensor:
        """h^(0) of the level's nodes: (Q, k^level, dim)."""
        x = self.features(self.norm(batch[f"x_{level}"]))
        if self.ids is not None:
            x = x + self.ids(batch[f"node_{level}"])
        if level == 0:
            return x[:, None]
        return x * batch[f"mask_{level}"][..., None]

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        rate = self.rate()
        h = [self.inputs(batch, i) for i in range(self.num_layers + 1)]
        phi_zero = self.time(torch.zeros(1, device=h[0].device))
        for layer_index, layer in enumerate(self.layers):
            new = []
            for i in range(self.num_layers - layer_index):
                q, width, dim = h[i].shape
                mask = batch[f"mask_{i + 1}"].reshape(q * width, self.k)
                dt = batch[f"dt_{i + 1}"].reshape(q * width, self.k)
                edge = self.edges(batch[f"code_{i + 1}"]).reshape(q * width, self.k, -1)
                out = layer(h[i].reshape(q * width, dim),
                            h[i + 1].reshape(q * width, self.k, dim), edge, phi_zero,
                            self.time(dt), dt, mask, rate)
                new.append(out.reshape(q, width, dim))
            h = new
        return h[0][:, 0]


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_dim))


class TwoTaskModel(ShardModel):
    """A model that embeds the batch's queries (``embed(batch) -> (Q, dim)``) and scores them
    with a link head on ``[z_u || z_v]`` and a tier head on ``z_u``. ``loss`` is
    ``L_link + lambda_t * L_tier`` over the trained heads (``meta["heads"]``); ``predict``
    gives ``pos`` / ``neg`` / ``hist`` link probabilities and ``tier`` class probabilities.
    Subclasses build ``self.link_head`` and ``self.tier_head`` and define ``embed``."""

    def __init__(self, config: Any, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.trained = tuple(meta.get("heads", ("link", "tier")))

    def embed(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        z = self.embed(batch)
        n, k, n_tier = batch["n_link"], batch["n_hist"], batch["n_tier"]
        src, dst, neg = z[:n], z[n:2 * n], z[2 * n:3 * n]
        hist = z[3 * n:3 * n + n * k].reshape(n, k, z.size(-1))
        hist_src = src[:, None].expand(-1, k, -1)
        return {"pos": self.link(src, dst), "neg": self.link(src, neg),
                "hist": self.link(hist_src, hist), "tier": self.tier_head(z[len(z) - n_tier:])}

    def link(self, z_u: torch.Tensor, z_v: torch.Tensor) -> torch.Tensor:
        """The link logit of each pair: the head over [z_u || z_v] (and z_u * z_v with
        ``link_product``). Shapes: (..., dim) twice -> (...)."""
        parts = [z_u, z_v, z_u * z_v] if getattr(self.config, "link_product", False) else [
            z_u, z_v]
        return self.link_head(torch.cat(parts, -1))[..., 0]

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        out = self.logits(batch)
        link = (F.binary_cross_entropy_with_logits(out["pos"], torch.ones_like(out["pos"]),
                                                   reduction="sum")
                + F.binary_cross_entropy_with_logits(out["neg"], torch.zeros_like(out["neg"]),
                                                     reduction="sum"))
        link = link / max(1, 2 * len(out["pos"]))
        tier = F.cross_entropy(out["tier"], batch["tier"], reduction="sum")
        tier = tier / max(1, len(out["tier"]))
        # an untrained head still takes part (DDP wants every parameter in the graph)
        loss = 0.0 * (out["pos"].sum() + out["tier"].sum())
        if "link" in self.trained:
            loss = loss + link
        if "tier" in self.trained:
            loss = loss + self.config.lambda_t * tier
        return loss

    def predict(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = self.logits(batch)
        scores = {}
        if "link" in self.trained:
            scores.update({key: torch.sigmoid(out[key]) for key in ("pos", "neg", "hist")})
        if "tier" in self.trained:
            scores["tier"] = torch.softmax(out["tier"], -1)
        return scores


@register_model("dmgnn", "dmgnn")
class DMGNN(TwoTaskModel):
    r"""DM-GNN: the decayed TGAT encoder and the two heads (see the module docstring).

    Args (``Config``):
        dim (int): state width, also the time encoding's. (default: 64)
        heads (int): attention heads. (default: 2)
        edge_dim (int): width of the edge type-and-direction embedding. (default: 16)
        dropout (float): in the FFNs and heads. (default: 0.1)
        decay (bool): the exponential time decay; off is TGAT. (default: True)
        decay_init (float): lambda at the start, per time unit. (default: 0.1)
        decay_lr_scale (float): Adam's rate for rho, times the trainer's ``--lr``: one scalar
            whose gradient averages over every attention weight, which at the weights' rate
            hardly moves in a short run. (default: 1.0)
        lambda_t (float): weight of the tier loss. (default: 1.0)
        node_embedding (bool): a learned embedding per node id in h^(0). (default: True)
        link_product (bool): the link head also reads z_u * z_v, a similarity the plain
            concatenation has to learn. (default: False: the paper's [z_u || z_v])

    The neighbourhood (``num_neighbors``, ``layers``) and the single-task switch
    (``objective``) are the task's options; Adam's learning rate is the trainer's ``--lr``.

    Shapes: batch as ``models.systems.dmgnn.task`` collates it; ``embed`` -> (Q, dim);
    ``predict`` -> {pos, neg: (B_l,), hist: (B_l, K), tier: (B_t, 5)}; ``loss`` -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        dim: int = 64
        heads: int = 2
        edge_dim: int = 16
        dropout: float = 0.1
        decay: bool = True
        decay_init: float = 0.1
        decay_lr_scale: float = 1.0
        lambda_t: float = 1.0
        node_embedding: bool = True
        link_product: bool = False

        def __post_init__(self) -> None:
            if self.dim < 1 or self.heads < 1 or self.dim % self.heads:
                raise OptionError(f"{type(self).__qualname__} dim must be a positive multiple "
                                  f"of heads, got dim={self.dim} heads={self.heads}")
            if self.decay_init < 0 or self.lambda_t < 0 or self.decay_lr_scale <= 0:
                raise OptionError(f"{type(self).__qualname__} decay_init and lambda_t must be "
                                  ">= 0, decay_lr_scale > 0")

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config
        self.encoder = TemporalEncoder(
            int(meta["num_nodes"]), c.dim, c.edge_dim, c.heads, int(meta.get("layers", 2)),
            int(meta.get("num_neighbors", 10)), c.dropout, c.decay, c.decay_init,
            c.node_embedding)
        self.link_head = mlp((3 if c.link_product else 2) * c.dim, c.dim, 1, c.dropout)
        self.tier_head = mlp(c.dim, c.dim, contract.NUM_TIERS, c.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        for head in (self.link_head, self.tier_head):
            for module in head:
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()

    def embed(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.encoder(batch)

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's groups: rho at ``decay_lr_scale`` times the trainer's rate
        (``lr_scale``, which ``models.loop`` reads), every other parameter at it."""
        rho = self.encoder.rho
        rest = [p for p in self.parameters() if p is not rho]
        return [{"params": rest}, {"params": [rho], "lr_scale": self.config.decay_lr_scale}]

    def decay_rate(self) -> float:
        """The learned lambda, per time unit (0 with decay off)."""
        return float(self.encoder.rate().detach())

    def __repr__(self) -> str:
        c = self.config
        return (f"{self.__class__.__name__}(dim={c.dim}, heads={c.heads}, "
                f"layers={self.encoder.num_layers}, k={self.encoder.k}, decay={c.decay}, "
                f"lambda={self.decay_rate():.4f}, lambda_t={c.lambda_t}, "
                f"heads_trained={','.join(self.trained)})")
