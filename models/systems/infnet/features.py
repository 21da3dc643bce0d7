"""The engineered features of the paper's LR baseline (Sec. 5.1), computed from an InfNet batch.

Three groups, per query q = (u, p):

1. cost: the item's PI bin and category one-hot (``item_x``), u's log1p spend per PI bin over
   the history window and over the last 30 days, and whether u bought p before;
2. graph: u's in- and out-degree in the diffusion sub-graphs, per week and in total, the number
   of senders of p to u, the sub-graph's node count;
3. sharing history: the PI-bin sums of the items u received and sent over the weeks.

All of them come from the shards' inputs, so they use nothing after the query time either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_geometric.utils import scatter

from contracts.infnet import ROLE_SEED


def feature_names(meta: dict[str, Any]) -> list[str]:
    bins, weeks = int(meta["pi_bins"]), int(meta["num_weeks"])
    names = [f"item_x{i}" for i in range(int(meta["item_dim"]))]
    names += [f"user_x{i}" for i in range(int(meta["user_feature_dim"]))]
    names += [f"in_deg_w{w}" for w in range(weeks)] + [f"out_deg_w{w}" for w in range(weeks)]
    names += ["in_deg", "out_deg", "n_senders", "log_nodes"]
    names += [f"received_pi{b}" for b in range(bins)] + [f"sent_pi{b}" for b in range(bins)]
    return names


@torch.no_grad()
def query_features(batch: dict[str, Any], meta: dict[str, Any]) -> torch.Tensor:
    """(Q, len(feature_names(meta))) float features of a collated batch."""
    g = batch["graph"]
    weeks = int(meta["num_weeks"])
    q = g.num_graphs
    target = g.ptr[:-1]
    is_target = torch.zeros(g.num_nodes, dtype=torch.bool, device=g.x.device)
    is_target[target] = True
    src, dst = g.edge_index
    query_of_edge = g.batch[src]
    into, out_of = is_target[dst], is_target[src]
    ones = torch.ones(g.num_edges, device=g.x.device)

    def per_week(mask: torch.Tensor) -> torch.Tensor:
        key = query_of_edge[mask] * weeks + g.edge_week[mask]
        return scatter(ones[mask], key, 0, dim_size=q * weeks, reduce="sum").view(q, weeks)

    in_w, out_w = per_week(into), per_week(out_of)
    received = scatter(g.edge_attr[into], query_of_edge[into], 0, dim_size=q, reduce="sum")
    sent = scatter(g.edge_attr[out_of], query_of_edge[out_of], 0, dim_size=q, reduce="sum")
    senders = scatter((g.role == ROLE_SEED).float(), g.batch, 0, dim_size=q, reduce="sum")
    nodes = (g.ptr[1:] - g.ptr[:-1]).float()
    user_x = g.x[target, : int(meta["user_feature_dim"])]
    return torch.cat(
        [
            batch["item_x"],
            user_x,
            torch.log1p(in_w),
            torch.log1p(out_w),
            torch.log1p(in_w.sum(1, keepdim=True)),
            torch.log1p(out_w.sum(1, keepdim=True)),
            senders.unsqueeze(1),
            torch.log(nodes).unsqueeze(1),
            torch.log1p(received),
            torch.log1p(sent),
        ],
        dim=1,
    )


def split_features(examples, task, meta, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of a whole split, collated in chunks."""
    xs, ys = [], []
    for start in range(0, len(examples), chunk):
        batch = task.collate(list(examples[start:start + chunk]))
        xs.append(query_features(batch, meta).numpy())
        ys.append(batch["y"].numpy())
    if not xs:
        return np.zeros((0, len(feature_names(meta))), np.float32), np.zeros(0, np.float32)
    return np.concatenate(xs), np.concatenate(ys)
