"""DeepWalk (Perozzi, Al-Rfou, Skiena: "DeepWalk: Online Learning of Social Representations",
KDD 2014) in numpy and torch, for the fixed half of NDM+SN's user embeddings.

The graph is read as undirected and unweighted, as in DeepWalk: an edge (a, b) lets a walk step
a -> b and b -> a; repeated edges and self-loops add nothing (a self-loop only makes a node
its own context). ``walks_per_node`` rounds each start one walk from every node with a
neighbour, in a seeded random order (DeepWalk's shuffled passes), and a walk steps to a
neighbour drawn uniformly:

    P(v_{i+1} = b | v_i = a) = 1 / deg(a)   for b in N(a)

Skip-gram with negative sampling (Mikolov et al. 2013) then fits a vector x_v and a context
vector y_v per node to every pair (v_i, v_{i+k}), 1 <= |k| <= ``window``, of the same walk:

    loss(a, b) = -log sigma(x_a . y_b) - sum_{m=1}^{neg} log sigma(-x_a . y_{n_m}),
    n_m ~ f(v)^(3/4)    (f: how often v occurs in the walks)

averaged over each batch of pairs and minimised with (sparse) Adam. The embedding of v is x_v;
nodes without a neighbour keep a zero row.

Deterministic for a seed: walks and negatives come from ``numpy.random.default_rng(seed)``,
the initial vectors from a ``torch.Generator`` seeded alike (the global torch RNG is not
touched), and every step runs in a fixed order.

Shapes:
    src, dst: (E,) node ids in 0..n_nodes-1.
    random_walks(...): (W, walk_length) node ids, W = walks_per_node * (nodes with a neighbour).
    deepwalk(...): (n_nodes, dim) float32.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F


@dataclasses.dataclass
class WalkConfig:
    """DeepWalk's settings.

    Args:
        dim: embedding size (default 32).
        walk_length: nodes per walk, the start included (default 40).
        walks_per_node: walks started from each node (default 10).
        window: skip-gram window, nodes either side (default 5).
        negatives: negative samples per pair (default 5).
        epochs: passes of skip-gram over the walks (default 1).
        batch_size: pairs per Adam step (default 8192).
        lr: Adam's learning rate (default 0.01).
        seed: seed of the walks, the negatives and the initial vectors (default 0).
    """

    dim: int = 32
    walk_length: int = 40
    walks_per_node: int = 10
    window: int = 5
    negatives: int = 5
    epochs: int = 1
    batch_size: int = 8192
    lr: float = 0.01
    seed: int = 0


def neighbours(
    src: np.ndarray, dst: np.ndarray, n_nodes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Undirected CSR (indptr (n_nodes + 1,), indices) of the distinct neighbours of each node,
    ascending; self-loops and repeated edges left out."""
    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst differ in length: {src.shape} vs {dst.shape}")
    bad = (src < 0) | (src >= n_nodes) | (dst < 0) | (dst >= n_nodes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"edge {i} ({src[i]}, {dst[i]}) is outside nodes 0..{n_nodes - 1}")
    keep = src != dst
    a = np.concatenate([src[keep], dst[keep]])
    b = np.concatenate([dst[keep], src[keep]])
    pairs = np.unique(a * n_nodes + b)  # sorted by (a, b), distinct
    a, b = pairs // n_nodes, pairs % n_nodes
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(a, minlength=n_nodes), out=indptr[1:])
    return indptr, b


def random_walks(
    indptr: np.ndarray, indices: np.ndarray, walk_length: int, walks_per_node: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(W, walk_length) uniform random walks: ``walks_per_node`` rounds, each one walk from
    every node with a neighbour in a fresh random order."""
    degree = np.diff(indptr)
    starts = np.flatnonzero(degree > 0)
    walks = np.empty((walks_per_node * len(starts), walk_length), dtype=np.int64)
    for r in range(walks_per_node):
        cur = rng.permutation(starts)
        rows = walks[r * len(starts): (r + 1) * len(starts)]
        rows[:, 0] = cur
        for step in range(1, walk_length):
            # a uniform neighbour: offset floor(U * deg) into the node's CSR row
            offset = (rng.random(len(cur)) * degree[cur]).astype(np.int64)
            cur = indices[indptr[cur] + offset]
            rows[:, step] = cur
    return walks


def skipgram_pairs(walks: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) node ids of every pair 1 <= |k| <= ``window`` apart in a walk."""
    centre, context = [], []
    for k in range(1, min(window, walks.shape[1] - 1) + 1):
        left, right = walks[:, :-k].ravel(), walks[:, k:].ravel()
        centre += [left, right]
        context += [right, left]
    if not centre:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(centre), np.concatenate(context)


def _sgns_step(x, y, centre, context, negative, optimizer) -> None:
    """One Adam step of the negative-sampling loss (module docstring) on a batch of pairs;
    ``x`` and ``y`` are the (n_nodes, dim) centre and context tables."""
    xc = F.embedding(centre, x, sparse=True)  # (B, dim)
    pos = (xc * F.embedding(context, y, sparse=True)).sum(-1)  # (B,)
    yn = F.embedding(negative, y, sparse=True)  # (B, negatives, dim)
    neg = torch.bmm(yn, xc[:, :, None]).squeeze(-1)  # (B, negatives)
    loss = -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(-1)).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def deepwalk(src: np.ndarray, dst: np.ndarray, n_nodes: int, config: WalkConfig) -> torch.Tensor:
    """(n_nodes, dim) DeepWalk embeddings of the graph (src, dst); zero rows for nodes without
    a neighbour. Walks are made and trained on in chunks, so memory stays at one chunk's
    pairs."""
    c = config
    indptr, indices = neighbours(src, dst, n_nodes)
    rng = np.random.default_rng(c.seed)
    gen = torch.Generator().manual_seed(c.seed)
    walks = random_walks(indptr, indices, c.walk_length, c.walks_per_node, rng)
    out = torch.zeros(n_nodes, c.dim)
    if len(walks) == 0:
        return out
    # word2vec's start: centre vectors small and random, context vectors zero
    x = torch.nn.Parameter(torch.empty(n_nodes, c.dim).uniform_(-0.5 / c.dim, 0.5 / c.dim,
                                                                   generator=gen))
    y = torch.nn.Parameter(torch.zeros(n_nodes, c.dim))
    optimizer = torch.optim.SparseAdam([x, y], lr=c.lr)
    counts = np.bincount(walks.ravel(), minlength=n_nodes).astype(np.float64) ** 0.75
    cdf = np.cumsum(counts / counts.sum())
    pairs_per_walk = max(1, 2 * sum(c.walk_length - k for k in range(1, c.window + 1)
                                    if k < c.walk_length))
    chunk = max(1, 8 * c.batch_size // pairs_per_walk)  # walks per chunk: ~8 batches of pairs
    for _ in range(c.epochs):
        order = rng.permutation(len(walks))
        for lo in range(0, len(walks), chunk):
            centre, context = skipgram_pairs(walks[order[lo: lo + chunk]], c.window)
            shuffle = rng.permutation(len(centre))
            centre, context = centre[shuffle], context[shuffle]
            for b in range(0, len(centre), c.batch_size):
                ce, co = centre[b: b + c.batch_size], context[b: b + c.batch_size]
                negative = np.minimum(np.searchsorted(cdf, rng.random((len(ce), c.negatives))),
                                      n_nodes - 1)
                _sgns_step(x, y, torch.from_numpy(ce), torch.from_numpy(co),
                           torch.from_numpy(negative), optimizer)
    has_edge = torch.from_numpy(np.diff(indptr) > 0)
    out[has_edge] = x.detach()[has_edge]
    return out
