"""DeepWalk on hand-made graphs: the CSR, walks along edges only, determinism, clique structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.systems.ndm.deepwalk import (
    WalkConfig,
    deepwalk,
    neighbours,
    random_walks,
    skipgram_pairs,
)


def two_cliques() -> tuple[np.ndarray, np.ndarray]:
    """Cliques {0, 1, 2, 3} and {4, 5, 6, 7} joined by the edge 3 - 4; node 8 has no edge."""
    edges = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    edges += [(a + 4, b + 4) for a, b in edges] + [(3, 4)]
    src, dst = np.array(edges).T
    return src, dst


def test_neighbours_are_undirected_distinct_and_skip_self_loops():
    # 0 -> 1 twice, 1 -> 0 once, 2 -> 2: node 0's and 1's only neighbour is each other.
    indptr, indices = neighbours(np.array([0, 0, 1, 2]), np.array([1, 1, 0, 2]), 3)
    assert indptr.tolist() == [0, 1, 2, 2] and indices.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"edge 1 \(0, 3\) is outside nodes 0..2"):
        neighbours(np.array([0, 0]), np.array([1, 3]), 3)


def test_walks_step_only_along_edges_and_repeat_for_a_seed():
    src, dst = two_cliques()
    indptr, indices = neighbours(src, dst, 9)
    walks = random_walks(indptr, indices, 12, 3, np.random.default_rng(4))
    assert walks.shape == (3 * 8, 12)  # node 8 has no neighbour: no walk starts there
    edges = {(a, b) for a, b in np.stack([src, dst], 1).tolist()}
    edges |= {(b, a) for a, b in edges}
    steps = {(a, b) for a, b in np.stack([walks[:, :-1].ravel(), walks[:, 1:].ravel()], 1).tolist()}
    assert steps <= edges
    # Each round starts once from every node with a neighbour.
    assert sorted(walks[:8, 0].tolist()) == list(range(8))
    again = random_walks(indptr, indices, 12, 3, np.random.default_rng(4))
    assert np.array_equal(walks, again)
    other = random_walks(indptr, indices, 12, 3, np.random.default_rng(5))
    assert not np.array_equal(walks, other)


def test_skipgram_pairs_hand_counted():
    # Walk 0 1 2, window 1: (0,1) (1,2) and back (1,0) (2,1).
    centre, context = skipgram_pairs(np.array([[0, 1, 2]]), 1)
    pairs = sorted(map(tuple, np.stack([centre, context], 1).tolist()))
    assert pairs == [(0, 1), (1, 0), (1, 2), (2, 1)]
    # Window 5 on a walk of 3 reaches at most 2 apart: 2 * (2 + 1) pairs.
    assert len(skipgram_pairs(np.array([[0, 1, 2]]), 5)[0]) == 6


def test_deepwalk_separates_two_cliques_and_is_deterministic():
    src, dst = two_cliques()
    config = WalkConfig(dim=8, walk_length=10, walks_per_node=20, window=2, negatives=2,
                        epochs=3, batch_size=256, lr=0.05, seed=1)
    state = torch.get_rng_state()
    emb = deepwalk(src, dst, 9, config)
    assert torch.equal(state, torch.get_rng_state())  # the global torch RNG is not touched
    assert emb.shape == (9, 8) and emb[8].abs().sum() == 0  # no edge: zero row
    assert torch.equal(emb, deepwalk(src, dst, 9, config))
    unit = torch.nn.functional.normalize(emb[:8], dim=1)
    cos = unit @ unit.T  # (8, 8)
    same = torch.tensor([[(a < 4) == (b < 4) and a != b for b in range(8)] for a in range(8)])
    cross = torch.tensor([[(a < 4) != (b < 4) for b in range(8)] for a in range(8)])
    assert cos[same].mean() > cos[cross].mean() + 0.5
    # Every node is closer to each of its clique-mates than to any node of the other clique,
    # bridge ends (3, 4) included.
    for a in range(8):
        assert cos[a][same[a]].min() > cos[a][cross[a]].max()
