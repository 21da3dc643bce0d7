r"""InfNet: purchase prediction from dynamic Taocode interest-diffusion sub-graphs.

Paper: "How Powerful are Interest Diffusion on Purchasing Prediction: A Case Study of Taocode",
Sec. 4. For a query q = (u, p, t) the input is T weekly sub-graphs G_1..G_T around u and the
senders S_u(p) of p to u (``models.systems.infnet.task``). Per node the initial state is
:math:`x_u^0 = h_u^{0,t} = \mathrm{ReLU}(W_0 \mathrm{Attr}(u))`.

* Structural block, Eq. (1): :math:`x_u^k = \mathrm{Combine}(x_u^{k-1},
  \mathrm{Aggr}(x_v^{k-1} | v \in N_u))`, K1 GAT layers on the static union of the weekly
  sub-graphs (undirected); :math:`s_u = x_u^{K_1}`.
* Diffusion block, per layer k and week t, edge-level attention over edge features
  :math:`e_{uv}^t` (embedded to c dims):

  - Eq. (2) :math:`In_u^{k,t} = \sum_{v \in S_u^t} ATT_{in}^k(h_u^{k-1,t}, h_v^{k-1,t},
    e_{vu}^t)\, e_{vu}^t` over u's in-edges that week,
  - Eq. (3) :math:`Out_u^{k,t}` the same over u's out-edges with its own :math:`W_{out}^k`,
  - Eq. (4) :math:`h_u^{k,t} = [In_u^{k,t}, Out_u^{k,t}]` (then a linear map back to c dims so
    layers stack),
  - Eq. (5) :math:`w_{uv}^{k,t} = \mathrm{LeakyReLU}(W_{in}^k [h_u^{k-1,t}, h_v^{k-1,t},
    e_{uv}^t])`, Eq. (6) softmax of w over u's in-edges (out-edges for Out),
  - Eq. (7) :math:`h_u^{k,t} = \mathrm{Enc}(h_u^{k,i} | i \le t)`: masked self-attention
    (default), GRU, causal mean or none (Table 3a);
  - readout :math:`d_u = \mathrm{Readout}(h_u^{K_2,t} |_{t=1}^{T})`: attention pooling over the
    weeks for self-attention, the last week otherwise (mean pooling for ``mean``).
* Eq. (8) :math:`g_q = \sum_{v \in S_u(p)} [s_v, d_v]`.
* Eq. (9) :math:`y' = \sigma(W [d_u, s_u, g_q, \mathrm{Attr}(p)] + b)`.
* Eq. (10) binary cross-entropy.

Variants (Table 2, 3): ``infnet_s`` (one static aggregated graph, no sequence encoder),
``infnet_no_attention`` (uniform edge weights in Eq. 2-3), ``infnet_no_structural``,
``infnet_no_edge`` (-Taocode features: every edge carries the same constant),
``infnet_no_user`` (purchase-history node features zeroed, role one-hot kept),
``infnet_no_item`` (no Attr(p) in Eq. 9), ``infnet_gru``, ``infnet_mean``, ``infnet_none``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv
from torch_geometric.utils import coalesce, scatter, softmax, to_undirected

from contracts.infnet import ROLE_SEED
from models.base import ShardModel, register_model

ENCODERS = ("attention", "gru", "mean", "none")


class CausalSelfAttention(nn.Module):
    r"""Masked self-attention over weeks: step t attends to steps i <= t only (Eq. 7).

    Args:
        channels (int): c.
        num_steps (int): T, for the learned position embedding.

    Shapes:
        input (N, T, c) -> output (N, T, c).
    """

    def __init__(self, channels: int, num_steps: int):
        super().__init__()
        self.channels = channels
        self.num_steps = num_steps
        self.position = nn.Parameter(torch.empty(num_steps, channels))
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(channels, channels)
        self.value = nn.Linear(channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.position, std=0.02)
        for lin in (self.query, self.key, self.value):
            lin.reset_parameters()

    def forward(self, h: torch.Tensor, return_weights: bool = False):
        steps = h.size(1)
        z = h + self.position[:steps]
        scores = self.query(z) @ self.key(z).transpose(1, 2) / self.channels**0.5  # (N, T, T)
        later = torch.ones(steps, steps, dtype=torch.bool, device=h.device).triu(1)
        attn = scores.masked_fill(later, float("-inf")).softmax(dim=-1)  # row t: weights on i<=t
        out = h + attn @ self.value(z)
        return (out, attn) if return_weights else out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, steps={self.num_steps})"


class CausalMean(nn.Module):
    """Mean over steps i <= t (Table 3a "Mean-Pooling"), input/output (N, T, c)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(1, h.size(1) + 1, device=h.device, dtype=h.dtype).view(1, -1, 1)
        return h.cumsum(dim=1) / steps


class GRUEncoder(nn.Module):
    """GRU over the weeks (Table 3a), input/output (N, T, c)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gru = nn.GRU(channels, channels, batch_first=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.gru(h)[0]


def base_logit(meta: dict[str, Any]) -> float:
    """logit of the training split's positive rate (0 when the task does not say)."""
    rate = min(max(float(meta.get("train_positive_rate", 0.5)), 1e-4), 1 - 1e-4)
    return math.log(rate / (1 - rate))


def make_encoder(kind: str, channels: int, num_steps: int) -> nn.Module:
    if kind == "attention":
        return CausalSelfAttention(channels, num_steps)
    if kind == "gru":
        return GRUEncoder(channels)
    if kind == "mean":
        return CausalMean()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown sequence encoder {kind!r}; expected one of {ENCODERS}")


class DiffusionLayer(nn.Module):
    r"""One diffusion-block layer, Eq. (2)-(6).

    Args:
        channels (int): c, the size of node states and embedded edge features.
        attention (bool): learn edge weights (Eq. 5-6); False gives uniform weights.
            (default: True)
        negative_slope (float): of the LeakyReLU in Eq. (5). (default: 0.2)

    Shapes:
        h (N, T, c), e (E, c), edge_index (2, E), edge_week (E,) -> (N, T, c);
        with ``return_attention`` also the in- and out-weights, each (E,).
    """

    def __init__(self, channels: int, attention: bool = True, negative_slope: float = 0.2):
        super().__init__()
        self.channels = channels
        self.attention = attention
        self.negative_slope = negative_slope
        # W_in^k, W_out^k in R^{1 x 3c}; none without attention, so DDP sees no unused weights
        self.att_in = nn.Linear(3 * channels, 1) if attention else None
        self.att_out = nn.Linear(3 * channels, 1) if attention else None
        self.combine = nn.Linear(2 * channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.att_in, self.att_out, self.combine):
            if lin is not None:
                lin.reset_parameters()

    def _weights(self, att, h_u, h_v, e, group, num_groups) -> torch.Tensor:
        """Eq. (5)-(6): (E,) weights summing to 1 over each group's edges."""
        if att is None:  # -Attention: every edge of a node's in- (out-) set weighs the same
            return softmax(torch.zeros_like(group, dtype=e.dtype), group, num_nodes=num_groups)
        w = F.leaky_relu(att(torch.cat([h_u, h_v, e], -1)), self.negative_slope)  # Eq. (5)
        return softmax(w.squeeze(-1), group, num_nodes=num_groups)  # Eq. (6)

    def forward(self, h, e, edge_index, edge_week, return_attention: bool = False):
        num_nodes, steps, _ = h.shape
        src, dst = edge_index  # an edge src -> dst: src shared an item with dst that week
        h_src = h[src, edge_week]  # (E, c)
        h_dst = h[dst, edge_week]  # (E, c)
        groups = num_nodes * steps

        # In-edges of u = dst: Eq. (5)-(6), then Eq. (2) over S_u^t.
        in_group = dst * steps + edge_week
        a_in = self._weights(self.att_in, h_dst, h_src, e, in_group, groups)
        inc = scatter(a_in.unsqueeze(-1) * e, in_group, 0, dim_size=groups, reduce="sum")
        # Out-edges of u = src: Eq. (3) over R_u^t with W_out.
        out_group = src * steps + edge_week
        a_out = self._weights(self.att_out, h_src, h_dst, e, out_group, groups)
        out = scatter(a_out.unsqueeze(-1) * e, out_group, 0, dim_size=groups, reduce="sum")

        state = torch.cat([inc, out], -1).view(num_nodes, steps, 2 * self.channels)  # Eq. (4)
        state = F.relu(self.combine(state))  # (N, T, c)
        return (state, a_in, a_out) if return_attention else state

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, attention={self.attention})"


@register_model("infnet", "infnet")
class InfNet(ShardModel):
    r"""InfNet (Sec. 4) with the ablation switches of Table 3.

    Args (``Config``):
        hidden (int): c. (default: 64)
        structural_layers (int): K1 GAT layers, Eq. (1). (default: 2)
        diffusion_layers (int): K2 diffusion layers, Eq. (2)-(7). (default: 2)
        heads (int): GAT heads (concatenated, c / heads each). (default: 1)
        encoder (str): sequence encoder, ``attention`` | ``gru`` | ``mean`` | ``none``.
            (default: ``attention``)
        attention (bool): edge attention in Eq. (2)-(3); False = uniform weights.
        structural (bool): use the structural block (s_u, s_v). (default: True)
        edge_features (bool): use Taocode edge features. (default: True)
        user_features (bool): use purchase-history node features. (default: True)
        item_features (bool): use Attr(p) in Eq. (9). (default: True)
        static (bool): InfNet-S, one static graph aggregated over the weeks. (default: False)
        dropout (float): before the output layer. (default: 0.0)
        pos_weight (float): weight of positives in Eq. (10). (default: 1.0)

    The paper's optimiser settings (Adam, lr 1e-3, batch 512) are the trainer's
    ``--lr 1e-3 --batch-size 512``.

    Shapes:
        batch["graph"]: N nodes, E edges over Q queries (see ``models.systems.infnet.task``);
        ``predict`` -> (Q,) probabilities; ``loss`` -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        hidden: int = 64
        structural_layers: int = 2
        diffusion_layers: int = 2
        heads: int = 1
        encoder: str = "attention"
        attention: bool = True
        structural: bool = True
        edge_features: bool = True
        user_features: bool = True
        item_features: bool = True
        static: bool = False
        dropout: float = 0.0
        pos_weight: float = 1.0

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config.hidden
        if config.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {config.encoder!r}")
        self.hidden = c
        self.num_steps = 1 if config.static else int(meta["num_weeks"])
        self.user_feature_dim = int(meta["user_feature_dim"])
        self.node_in = nn.Linear(int(meta["node_dim"]), c)
        self.edge_in = nn.Linear(int(meta["edge_dim"]) if config.edge_features else 1, c)
        layers = config.structural_layers if config.structural else 0
        self.gat = nn.ModuleList(
            GATConv(c, c // config.heads, heads=config.heads) for _ in range(layers)
        )
        self.diffusion = nn.ModuleList(
            DiffusionLayer(c, attention=config.attention) for _ in range(config.diffusion_layers)
        )
        encoder = "none" if config.static else config.encoder
        self.encoders = nn.ModuleList(
            make_encoder(encoder, c, self.num_steps) for _ in range(config.diffusion_layers)
        )
        self.readout_att = nn.Linear(c, c) if encoder == "attention" else None
        self.readout_vec = nn.Linear(c, 1, bias=False) if encoder == "attention" else None
        s = c if config.structural else 0
        item = int(meta["item_dim"]) if config.item_features else 0
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(c + s + (s + c) + item, 1)  # Eq. (9): [d_u, s_u, g_q, Attr(p)]
        self.base_logit = base_logit(meta)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.node_in.reset_parameters()
        self.edge_in.reset_parameters()
        for module in [*self.gat, *self.diffusion, self.output]:
            module.reset_parameters()
        # Start at the base rate: Adam moves a bias ~lr per step, too slow to find it alone.
        nn.init.constant_(self.output.bias, self.base_logit)
        for enc in self.encoders:
            if hasattr(enc, "reset_parameters"):
                enc.reset_parameters()
        for lin in (self.readout_att, self.readout_vec):
            if lin is not None:
                lin.reset_parameters()

    # -- pieces -----------------------------------------------------------------------------

    def node_features(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.user_features:
            x = torch.cat([torch.zeros_like(x[:, : self.user_feature_dim]),
                           x[:, self.user_feature_dim:]], dim=1)
        return F.relu(self.node_in(x))  # (N, c): x_u^0 = h_u^{0,t}

    def edges(self, graph) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(edge_index, edge_week, embedded edge features (E, c)) for the diffusion block."""
        edge_index, attr, week = graph.edge_index, graph.edge_attr, graph.edge_week
        if self.config.static:
            # InfNet-S: the weeks' edges collapse into one graph, parallel edges summed.
            edge_index, attr = coalesce(edge_index, attr, num_nodes=graph.num_nodes,
                                        reduce="sum")
            week = torch.zeros(edge_index.size(1), dtype=torch.long, device=attr.device)
        if self.config.edge_features:
            attr = torch.log1p(attr)
        else:
            attr = torch.ones(attr.size(0), 1, device=attr.device, dtype=attr.dtype)
        return edge_index, week, F.relu(self.edge_in(attr))

    def structural(self, h0: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Eq. (1) stacked K1 times on the static undirected union of the weeks' edges."""
        if not self.config.structural:
            return h0.new_zeros(h0.size(0), 0)
        static = to_undirected(edge_index, num_nodes=h0.size(0))
        s = h0
        for conv in self.gat:
            s = F.elu(conv(s, static))  # (N, c)
        return s

    def dynamic(self, h0, edge_index, week, e) -> torch.Tensor:
        """Eq. (2)-(7) for K2 layers, then the readout: d (N, c)."""
        h = h0.unsqueeze(1).expand(-1, self.num_steps, -1)  # h^{0,t} is the same for every t
        for layer, encoder in zip(self.diffusion, self.encoders, strict=True):
            h = layer(h, e, edge_index, week)  # Eq. (2)-(6), (N, T, c)
            h = encoder(h)  # Eq. (7)
        return self.readout(h)

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        if self.readout_att is not None:
            beta = self.readout_vec(torch.tanh(self.readout_att(h))).softmax(dim=1)  # (N, T, 1)
            return (beta * h).sum(dim=1)
        if self.config.encoder == "mean" and not self.config.static:
            return h.mean(dim=1)
        return h[:, -1]  # GRU / none: the last week

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        graph = batch["graph"]
        num_queries = graph.num_graphs
        h0 = self.node_features(graph.x)
        edge_index, week, e = self.edges(graph)
        s = self.structural(h0, graph.edge_index)  # (N, c) or (N, 0)
        d = self.dynamic(h0, edge_index, week, e)  # (N, c)
        target = graph.ptr[:-1]  # node 0 of every query is its target user
        sender = graph.role == ROLE_SEED
        g_q = scatter(torch.cat([s, d], -1)[sender], graph.batch[sender], 0,
                      dim_size=num_queries, reduce="sum")  # Eq. (8)
        parts = [d[target], s[target], g_q]
        if self.config.item_features:
            parts.append(batch["item_x"])
        return self.output(self.dropout(torch.cat(parts, -1))).squeeze(-1)  # Eq. (9), (Q,)

    # -- interface --------------------------------------------------------------------------

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        logits = self.logits(batch)
        pos_weight = logits.new_tensor(self.config.pos_weight)
        return F.binary_cross_entropy_with_logits(logits, batch["y"], pos_weight=pos_weight)  # (10)

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.sigmoid(self.logits(batch))

    def __repr__(self) -> str:
        c = self.config
        return (f"{self.__class__.__name__}(hidden={c.hidden}, K1={c.structural_layers}, "
                f"K2={c.diffusion_layers}, encoder={c.encoder}, static={c.static})")


def _variant(cls_name: str, name: str, doc: str, **defaults: Any) -> type[InfNet]:
    """A named InfNet whose Config defaults differ (Table 2 and 3 rows)."""
    fields = [(k, type(v), dataclasses.field(default=v)) for k, v in defaults.items()]
    config = dataclasses.make_dataclass(f"{cls_name}Config", fields, bases=(InfNet.Config,))
    cls = type(cls_name, (InfNet,), {"Config": config, "__doc__": doc, "__module__": __name__})
    return register_model("infnet", name)(cls)


InfNetS = _variant("InfNetS", "infnet_s", "InfNet-S: one static aggregated graph (Table 2).",
                   static=True)
# Without attention node states never reach the output through a diffusion layer but the last
# (they only steer the weights), so one layer computes the same function; more would be dead
# weights that DDP refuses.
InfNetNoAttention = _variant("InfNetNoAttention", "infnet_no_attention",
                             "-Attention (Table 3c).", attention=False, diffusion_layers=1)
InfNetNoStructural = _variant("InfNetNoStructural", "infnet_no_structural",
                              "-Structural block (Table 3d).", structural=False)
InfNetNoEdge = _variant("InfNetNoEdge", "infnet_no_edge", "-Taocode features (Table 3b).",
                        edge_features=False)
InfNetNoUser = _variant("InfNetNoUser", "infnet_no_user", "-User features (Table 3b).",
                        user_features=False)
InfNetNoItem = _variant("InfNetNoItem", "infnet_no_item", "-Item features (Table 3b).",
                        item_features=False)
InfNetGRU = _variant("InfNetGRU", "infnet_gru", "GRU sequence encoder (Table 3a).",
                     encoder="gru")
InfNetMean = _variant("InfNetMean", "infnet_mean", "Mean-pooling sequence encoder (Table 3a).",
                      encoder="mean")
InfNetNone = _variant("InfNetNone", "infnet_none", "No sequence encoder (Table 3a).",
                      encoder="none")
