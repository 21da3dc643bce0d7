r"""RiseNet: rising-star prediction from an item's weekly diffusion graphs and sales series.

Paper: "Who is next: rising star prediction via diffusion of user interest in social networks"
(Yang et al., 2022), Sec. 4. The extracted text lost its equations, so each part below is our
reading of the prose, named as the paper names it. Per week t of T, the week's share graph G_t
has user features M_t (N_t, 7) and edge features x_uv (2); X_t holds the item's log1p price,
sales, records and scale.

* **DiffGate** (Sec. 4.2; K layers, default 2), :math:`h^0 = \mathrm{Linear}(M_t)`. Messages
  run along share edges in *both* directions (a receiver hears its senders, a sender its
  receivers; a third edge feature flags the reversed copy), so hubs, which mostly send, are
  updated too. For a message v -> u:

  - item attention (GATv2-style, as the paper asks: the item is not simply concatenated and
    projected) :math:`e_{item}(u) = w_i^\top \mathrm{LeakyReLU}(W_1 [h_u \| I_{t-1}])`, with
    :math:`I_{t-1}` the GRU's previous item state of u's sample,
  - relationship attention :math:`e_{rel}(u, v) = w_r^\top \mathrm{LeakyReLU}(W_2 [h_u \| h_v
    \| x_{uv}])`,
  - :math:`a_{uv} = \sigma(e_{item}(u) + e_{rel}(u, v))` and
    :math:`h_u^k = \mathrm{ReLU}(W_k (h_u^{k-1} + \sum_v a_{uv} h_v^{k-1}))`.

* **PickGate** (Sec. 4.2; gPool / TopKPooling-style): :math:`p_u = h_u \cdot w / \|w\|`; per
  sample the top ``keep`` share of its nodes (at least one of a non-empty graph) are kept, each
  gated by :math:`\tanh(p_u)`; :math:`g_t = [\sum_{top} \tanh(p_u) h_u \| \sum_{all} h_u]` (2c;
  zeros for a week without users; the paper's readout is a sum). Weeks hold from none to
  thousands of users, so these sums span orders of magnitude; :math:`g_t` is passed on as
  :math:`\mathrm{sign}(g_t) \log(1 + |g_t|)`, which keeps the order of sizes but stops
  FuseGate's softmax saturating.
* **Multi-task scale loss** (Sec. 4.2): an MLP head predicts :math:`\log(s_{t+1} + 1)` from
  :math:`g_t` for t < T-1; the loss is the root of the mean squared error of these logs (our
  reading of the paper's "mean relative square error": an error of logs is a relative error).
  The paper updates only the GNN with it: :math:`I_{t-1}` enters the item attention through a
  stop-gradient, so the scale loss reaches DiffGate, PickGate and its head, never FuseGate,
  the GRU or the classifier; the classification loss still trains the GRU through :math:`C_t`.
* **FuseGate** (Sec. 4.3; with DiffGate's item attention the "coupled mechanism"):
  :math:`x_t = W_x X_t + E[\mathrm{category}]`, :math:`z = [g_t \| x_t]`,
  :math:`\beta = \mathrm{softmax}(\mathrm{MLP}(z))` with two weights per sample, one per block;
  :math:`C_t = [\beta_0 g'_t \| \beta_1 x_t]` with :math:`g'_t = \mathrm{Linear}(g_t)` (c).
* **Prediction** (Sec. 4.4): :math:`I_t = \mathrm{GRU}(C_t, I_{t-1})`, :math:`I_0 = \mathbf{1}`;
  the output is one logit :math:`\mathrm{MLP}(I_T)` with a sigmoid (the paper's two-class
  softmax written as one logit). Loss: BCE weighted towards the rare positives +
  ``scale_weight`` * scale loss.

Ablations (each a ``Config`` switch): ``graph=False`` is RiseNet-r (no graph at all: the GRU reads
:math:`x_t` alone, and without :math:`g_t` there is no scale loss); ``pickgate=False`` readout
:math:`g_t = [\mathrm{mean} \| \mathrm{sum}]` of all nodes; ``multitask=False`` drops the scale
loss; ``gates=False`` (-FuseGate-and-DiffGate) sets :math:`a_{uv} = 1` and
:math:`C_t = [g'_t \| x_t]`; ``dynamic=False`` (-dynamic structure) replaces every week's graph by
the union of the T weeks' graphs (users de-duplicated by user id within a sample, an edge by its
two users; a user keeps its latest week's features, a repeated edge the mean of its features),
so only :math:`X_t` and the item state vary by week; ``layers`` K in 1..4 (the sensitivity sweep).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter

from models.base import OptionError, ShardModel, register_model


class DiffGate(nn.Module):
    r"""One DiffGate layer: gated sum of neighbour states, then a linear map and ReLU.

    Args:
        channels (int): c, node and item state size.
        edge_dim (int): edge features per (directed) edge, direction flag included.
        gates (bool): learn :math:`a_{uv}`; False sets every :math:`a_{uv} = 1`. (default: True)
        negative_slope (float): of the attention LeakyReLUs. (default: 0.2)

    Shapes:
        h (N, c), edge_index (2, E) with messages ``edge_index[0] -> edge_index[1]``,
        edge_attr (E, edge_dim), item (N, c) -> (N, c); with ``return_gate`` also a (E,).
    """

    def __init__(self, channels: int, edge_dim: int, gates: bool = True,
                 negative_slope: float = 0.2):
        super().__init__()
        self.channels = channels
        self.edge_dim = edge_dim
        self.gates = gates
        self.negative_slope = negative_slope
        # without gates no attention weights exist, so DDP sees no unused parameters
        self.item_att = nn.Linear(2 * channels, channels) if gates else None  # W_1
        self.item_vec = nn.Linear(channels, 1, bias=False) if gates else None  # w_i
        self.rel_att = nn.Linear(2 * channels + edge_dim, channels) if gates else None  # W_2
        self.rel_vec = nn.Linear(channels, 1, bias=False) if gates else None  # w_r
        self.update = nn.Linear(channels, channels)  # W_k
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.item_att, self.item_vec, self.rel_att, self.rel_vec, self.update):
            if lin is not None:
                lin.reset_parameters()

    def gate(self, h, edge_index, edge_attr, item) -> torch.Tensor:
        """a_uv for every edge v -> u, (E,)."""
        src, dst = edge_index
        if not self.gates:
            return h.new_ones(src.size(0))
        slope = self.negative_slope
        e_item = self.item_vec(F.leaky_relu(self.item_att(torch.cat([h, item], -1)), slope))
        e_rel = self.rel_vec(F.leaky_relu(
            self.rel_att(torch.cat([h[dst], h[src], edge_attr], -1)), slope))  # (E, 1)
        return torch.sigmoid(e_item[dst] + e_rel).squeeze(-1)

    def forward(self, h, edge_index, edge_attr, item, return_gate: bool = False):
        src, dst = edge_index
        a = self.gate(h, edge_index, edge_attr, item)  # (E,)
        incoming = scatter(a.unsqueeze(-1) * h[src], dst, 0, dim_size=h.size(0), reduce="sum")
        out = F.relu(self.update(h + incoming))  # (N, c)
        return (out, a) if return_gate else out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, gates={self.gates})"


class PickGate(nn.Module):
    r"""Top-K readout of one week's node states per sample.

    Args:
        channels (int): c.
        keep (float): share of each sample's nodes kept, at least one. (default: 0.1)
        topk (bool): False gives the plain [mean || sum] readout and no score vector.

    Shapes:
        h (N, c), batch (N,) -> g (B, 2c); ``select`` -> indices of the kept nodes.
    """

    def __init__(self, channels: int, keep: float = 0.1, topk: bool = True):
        super().__init__()
        self.channels = channels
        self.keep = keep
        self.topk = topk
        self.weight = nn.Parameter(torch.empty(channels)) if topk else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            bound = 1 / math.sqrt(self.channels)
            nn.init.uniform_(self.weight, -bound, bound)

    def score(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.weight / self.weight.norm()  # (N,): p_u

    def select(self, score: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        """Indices of the ceil(keep * n_b) best-scored nodes of every sample b (ties: lowest
        index first)."""
        counts = torch.bincount(batch, minlength=num_graphs)  # (B,)
        k = torch.ceil(self.keep * counts.to(score.dtype)).long().clamp(min=1)
        order = torch.argsort(score, descending=True, stable=True)
        order = order[torch.argsort(batch[order], stable=True)]  # by sample, best first
        start = torch.cumsum(counts, 0) - counts
        rank = torch.arange(order.numel(), device=score.device) - start[batch[order]]
        return order[rank < k[batch[order]]]

    def forward(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        total = scatter(h, batch, 0, dim_size=num_graphs, reduce="sum")  # (B, c)
        if not self.topk:
            return torch.cat([scatter(h, batch, 0, dim_size=num_graphs, reduce="mean"), total], -1)
        p = self.score(h)
        kept = self.select(p.detach(), batch, num_graphs)
        gated = h[kept] * torch.tanh(p[kept]).unsqueeze(-1)
        top = scatter(gated, batch[kept], 0, dim_size=num_graphs, reduce="sum")  # (B, c)
        return torch.cat([top, total], -1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, keep={self.keep}, topk={self.topk})"


class FuseGate(nn.Module):
    r"""Weighs the graph block against the item block per sample.

    Args:
        graph_dim (int): size of g_t (2c).
        channels (int): c, size of g'_t and x_t.
        gates (bool): False gives the plain concatenation :math:`[g'_t \| x_t]`.

    Shapes:
        g (B, 2c), x (B, c) -> C (B, 2c), beta (B, 2) (ones without gates).
    """

    def __init__(self, graph_dim: int, channels: int, gates: bool = True):
        super().__init__()
        self.graph_dim = graph_dim
        self.channels = channels
        self.gates = gates
        self.graph_out = nn.Linear(graph_dim, channels)  # g'_t
        self.mlp = nn.Sequential(
            nn.Linear(graph_dim + channels, channels), nn.ReLU(), nn.Linear(channels, 2)
        ) if gates else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.graph_out.reset_parameters()
        if self.mlp is not None:
            for layer in self.mlp:
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g_out = self.graph_out(g)  # (B, c)
        if self.mlp is None:
            return torch.cat([g_out, x], -1), x.new_ones(x.size(0), 2)
        beta = self.mlp(torch.cat([g, x], -1)).softmax(-1)  # (B, 2)
        return torch.cat([beta[:, :1] * g_out, beta[:, 1:] * x], -1), beta

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.graph_dim}, {self.channels}, gates={self.gates})"


def static_union(graphs: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The union of T week batches: (x, edge_index, edge_attr, batch) with one node per
    (sample, user id) holding its latest week's features, and one edge per (sample, sender,
    receiver) holding the mean of its weeks' features."""
    sample = torch.cat([g.batch for g in graphs])
    user = torch.cat([g.user_id for g in graphs])
    keys, node_of = torch.unique(torch.stack([sample, user], 1), dim=0, return_inverse=True)
    x = graphs[0].x.new_zeros(keys.size(0), graphs[0].x.size(1))
    offset, edges = 0, []
    for g in graphs:  # in week order, so a later week's features overwrite earlier ones
        n = g.num_nodes
        x[node_of[offset:offset + n]] = g.x
        edges.append(node_of[offset:offset + n][g.edge_index])
        offset += n
    edge_index = torch.cat(edges, 1)
    attr = torch.cat([g.edge_attr for g in graphs])
    edge_index, edge_of = torch.unique(edge_index, dim=1, return_inverse=True)
    attr = scatter(attr, edge_of, 0, dim_size=edge_index.size(1), reduce="mean")
    return x, edge_index, attr, keys[:, 0]


@register_model("risenet", "risenet")
class RiseNet(ShardModel):
    r"""RiseNet with its ablation switches (see the module docstring for the equations).

    Args (``Config``):
        hidden (int): c. (default: 64)
        keep (float): PickGate's share of nodes kept per sample, in (0, 1]. (default: 0.1)
        layers (int): DiffGate layers K, 1..4. (default: 2)
        dropout (float): on C_t and in the output MLP. (default: 0.1)
        scale_weight (float): weight of the scale loss. (default: 1.0)
        pos_weight (float): weight of positives in the BCE; 0 takes neg/pos from the task's
            ``pos_rate`` (1 when the task gives none). (default: 0.0)
        graph (bool): False is RiseNet-r, no graph. (default: True)
        pickgate (bool): False reads each week out as [mean || sum]. (default: True)
        multitask (bool): add the scale loss. (default: True)
        gates (bool): False is -FuseGate-and-DiffGate. (default: True)
        dynamic (bool): False is -dynamic structure, one union graph. (default: True)

    The optimiser (Adam, lr 1e-3) is the trainer's ``--lr``.

    Shapes:
        batch: as ``models.systems.risenet.task`` collates it (B samples, T weeks);
        ``predict`` -> (B,) probabilities; ``loss`` -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        hidden: int = 64
        keep: float = 0.1
        layers: int = 2
        dropout: float = 0.1
        scale_weight: float = 1.0
        pos_weight: float = 0.0
        graph: bool = True
        pickgate: bool = True
        multitask: bool = True
        gates: bool = True
        dynamic: bool = True

        def __post_init__(self) -> None:
            if not 1 <= self.layers <= 4:
                raise OptionError(f"RiseNet.Config layers must be in 1..4, got {self.layers}")
            if not 0 < self.keep <= 1:
                raise OptionError(f"RiseNet.Config keep must be in (0, 1], got {self.keep}")

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config.hidden
        self.hidden = c
        self.weeks = int(meta.get("weeks", 1))
        self.categories = int(meta.get("categories", 0))
        self.item_in = nn.Linear(int(meta.get("item_dim", 4)), c)  # W_x
        self.category = nn.Embedding(self.categories + 1, c)  # the last row: unknown category
        gnn = config.graph
        self.node_in = nn.Linear(int(meta.get("user_dim", 7)), c) if gnn else None  # h^0
        edge_dim = int(meta.get("edge_dim", 2)) + 1  # + the reversed-copy flag
        self.diffgate = nn.ModuleList(
            DiffGate(c, edge_dim, gates=config.gates) for _ in range(config.layers if gnn else 0)
        )
        self.pickgate = PickGate(c, config.keep, topk=config.pickgate) if gnn else None
        self.fusegate = FuseGate(2 * c, c, gates=config.gates) if gnn else None
        multitask = gnn and config.multitask and self.weeks > 1
        self.scale_head = nn.Sequential(
            nn.Linear(2 * c, c), nn.ReLU(), nn.Linear(c, 1)) if multitask else None
        self.gru = nn.GRUCell(2 * c if gnn else c, c)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Sequential(
            nn.Linear(c, c), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(c, 1))
        rate = float(meta.get("pos_rate", 0.0) or 0.0)
        if config.pos_weight > 0:
            self.pos_weight = config.pos_weight
        else:
            self.pos_weight = (1 - rate) / rate if 0 < rate < 1 else 1.0
        # Start at the weighted base rate (0.5 when pos_weight balances the classes).
        weighted = rate * self.pos_weight / (rate * self.pos_weight + 1 - rate) if rate else 0.5
        weighted = min(max(weighted, 1e-4), 1 - 1e-4)
        self.base_logit = math.log(weighted / (1 - weighted))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.item_in, self.category, self.node_in, self.pickgate, self.fusegate,
                       self.gru, *self.diffgate, *(self.scale_head or []), *self.classifier):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        nn.init.constant_(self.classifier[-1].bias, self.base_logit)

    # -- pieces -----------------------------------------------------------------------------

    def week_graphs(self, graphs: list) -> list[tuple]:
        """Per week (x, edge_index, edge_attr, batch), the same union graph when not dynamic;
        edges doubled into both directions with a reversed-copy flag."""
        if self.config.dynamic:
            parts = [(g.x, g.edge_index, g.edge_attr, g.batch) for g in graphs]
        else:
            parts = [static_union(graphs)] * len(graphs)
        out = []
        for x, edge_index, attr, batch in parts:
            flag = attr.new_zeros(attr.size(0), 1)
            both = torch.cat([edge_index, edge_index.flip(0)], 1)  # (2, 2E)
            attr = torch.cat([torch.cat([attr, flag], -1), torch.cat([attr, flag + 1], -1)])
            out.append((x, both, attr, batch))
        return out

    def graph_summary(self, week: tuple, item_state: torch.Tensor) -> torch.Tensor:
        """DiffGate layers then PickGate: g_t (B, 2c). ``item_state`` is I_{t-1} (B, c)."""
        x, edge_index, attr, batch = week
        h = self.node_in(x)  # (N, c): h^0
        item = item_state.detach()[batch]  # stop-gradient: the scale loss stays in the GNN
        for layer in self.diffgate:
            h = layer(h, edge_index, attr, item)
        g = self.pickgate(h, batch, item_state.size(0))  # (B, 2c)
        return torch.sign(g) * torch.log1p(g.abs())  # sums over 0 .. 1000s of users, compressed

    def parts(self, batch: dict[str, Any]) -> dict[str, Any]:
        """logits (B,), scale predictions (B, T-1) or None, FuseGate weights (B, T, 2) or None."""
        x_item = batch["x_item"]  # (B, T, 4)
        size, weeks = x_item.shape[:2]
        category = batch["category"]
        known = (category >= 0) & (category < self.categories)
        x = self.item_in(x_item) + self.category(
            torch.where(known, category, torch.full_like(category, self.categories))
        ).unsqueeze(1)  # (B, T, c): W_x X_t + E[category]
        state = x_item.new_ones(size, self.hidden)  # I_0
        graphs = self.week_graphs(batch["graphs"]) if self.config.graph else None
        summaries, betas = [], []
        for t in range(weeks):
            if graphs is None:
                fused = x[:, t]
            else:
                g = self.graph_summary(graphs[t], state)  # (B, 2c), Sec. 4.2
                summaries.append(g)
                fused, beta = self.fusegate(g, x[:, t])  # (B, 2c), Sec. 4.3
                betas.append(beta)
            state = self.gru(self.dropout(fused), state)  # I_t, Sec. 4.4
        scale = None
        if self.scale_head is not None and weeks > 1:
            scale = self.scale_head(torch.stack(summaries[:-1], 1)).squeeze(-1)  # (B, T-1)
        return {
            "logits": self.classifier(state).squeeze(-1),
            "scale": scale,
            "beta": torch.stack(betas, 1) if betas else None,
        }

    @staticmethod
    def scale_loss(pred: torch.Tensor, scale_next: torch.Tensor) -> torch.Tensor:
        """sqrt(mean((pred - log(s + 1))^2)); clamped under the root so that a perfect
        prediction has a zero gradient, not NaN."""
        target = torch.log1p(scale_next.clamp(min=0))
        return (pred - target).pow(2).mean().clamp(min=1e-12).sqrt()

    # -- interface --------------------------------------------------------------------------

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        out = self.parts(batch)
        logits = out["logits"]
        loss = F.binary_cross_entropy_with_logits(
            logits, batch["y"], pos_weight=logits.new_tensor(self.pos_weight))
        if out["scale"] is not None:
            loss = loss + self.config.scale_weight * self.scale_loss(out["scale"],
                                                                     batch["scale_next"])
        return loss

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.sigmoid(self.parts(batch)["logits"])

    def __repr__(self) -> str:
        c = self.config
        return (f"{self.__class__.__name__}(hidden={c.hidden}, layers={c.layers}, keep={c.keep}, "
                f"graph={c.graph}, pickgate={c.pickgate}, multitask={c.multitask}, "
                f"gates={c.gates}, dynamic={c.dynamic})")
