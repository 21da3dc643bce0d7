r"""DiffNet baseline (Wu et al., SIGIR 2019) on the static aggregated diffusion graph.

As the InfNet paper deploys it (Sec. 5.1): the input is the static interest-diffusion network,
the union of a query's weekly sub-graphs; user and item representations fuse free embeddings
with features, GCN layers diffuse influence over the social graph, the score is an inner
product:

* fusion: :math:`h_u^0 = \mathrm{ReLU}(W_u [P_u, x_u])`, :math:`v_p = W_p [Q_p, \mathrm{Attr}(p)]`
  (:math:`P, Q` free embeddings, hashed into ``buckets`` rows);
* influence diffusion: :math:`h_u^{k+1} = \mathrm{ReLU}(W_k [\frac{1}{|N_u|}\sum_{v \in N_u}
  h_v^k, h_u^k])` for K layers over the undirected static graph (the last one linear, and
  :math:`v_p` linear, so the score can take either sign);
* prediction: :math:`y' = \sigma(\langle h_u^K, v_p \rangle + b)`, binary cross-entropy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter, to_undirected

from models.base import ShardModel, register_model
from models.systems.infnet.infnet import base_logit


@register_model("infnet", "diffnet")
class DiffNet(ShardModel):
    """Args (``Config``): hidden (64), layers K (2), buckets for hashed ids (2**18); the
    optimiser settings are the trainer's (``--lr 1e-3 --batch-size 512``).

    Shapes: batch as in ``models.systems.infnet.task``; predict -> (Q,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        hidden: int = 64
        layers: int = 2
        buckets: int = 2**18

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config.hidden
        self.user_buckets = min(config.buckets, int(meta["max_user_id"]) + 1)
        self.item_buckets = min(config.buckets, int(meta["max_item_id"]) + 1)
        self.user_emb = nn.Embedding(self.user_buckets, c)
        self.item_emb = nn.Embedding(self.item_buckets, c)
        self.user_fuse = nn.Linear(c + int(meta["node_dim"]), c)
        self.item_fuse = nn.Linear(c + int(meta["item_dim"]), c)
        self.diffuse = nn.ModuleList(nn.Linear(2 * c, c) for _ in range(config.layers))
        self.bias = nn.Parameter(torch.zeros(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)
        for lin in (self.user_fuse, self.item_fuse, *self.diffuse):
            lin.reset_parameters()
        nn.init.constant_(self.bias, base_logit(self.meta))

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        g = batch["graph"]
        free_u = self.user_emb(g.node_id % self.user_buckets)
        h = F.relu(self.user_fuse(torch.cat([free_u, g.x], -1)))  # (N, c) fusion
        edges = to_undirected(g.edge_index, num_nodes=g.num_nodes)  # static graph
        src, dst = edges
        for k, lin in enumerate(self.diffuse):
            nbr = scatter(h[src], dst, 0, dim_size=g.num_nodes, reduce="mean")  # (N, c)
            h = lin(torch.cat([nbr, h], -1))
            # the last layer stays linear so that <h_u, v_p> can take either sign
            h = F.relu(h) if k + 1 < len(self.diffuse) else h
        free_p = self.item_emb(batch["item_id"] % self.item_buckets)
        v = self.item_fuse(torch.cat([free_p, batch["item_x"]], -1))  # (Q, c)
        return (h[g.ptr[:-1]] * v).sum(-1) + self.bias

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.logits(batch), batch["y"])

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.sigmoid(self.logits(batch))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(hidden={self.config.hidden}, K={self.config.layers})"
