"""The temporal graph's lookups by hand, the leak guard, and the seeded negatives.

Stream (the hand-made one of ``test_task``): edges 0: 0->1 @10 share, 1: 1->2 @20 like,
2: 0->2 @30 comment, 3: 2->0 @30 repost, 4: 0->1 @40 share, 5: 3->0 @50 like, ...;
attributes of user 0: browse @5 (0), payment @15 (30), payment @35 (100).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contracts import dmgnn as contract
from models.systems.dmgnn.dmgnn import DMGNN
from models.systems.dmgnn.graph import (
    PastDestinations,
    TemporalGraph,
    fixed_negatives,
    historical_negatives,
)
from models.systems.dmgnn.task import neighbourhood
from tests.models.systems.dmgnn.test_task import ATTRIBUTES, EDGES

TYPES = {name: i for i, name in enumerate(contract.EDGE_TYPES)}
KINDS = {name: i for i, name in enumerate(contract.ATTRIBUTE_TYPES)}


def graph(edge_rows=EDGES, attr_rows=ATTRIBUTES, window=30) -> TemporalGraph:
    e = np.array([r[:4] for r in edge_rows], np.int64).reshape(-1, 4)
    a = np.array([(r[1], r[2]) for r in attr_rows], np.int64).reshape(-1, 2)
    return TemporalGraph(e[:, 1], e[:, 2], e[:, 3], np.array([TYPES[r[4]] for r in edge_rows]),
                         a[:, 0], a[:, 1], np.array([KINDS[r[3]] for r in attr_rows], np.int64),
                         np.array([r[4] for r in attr_rows], float), 4, window)


def test_neighbours_are_the_last_k_strictly_before_the_time():
    g = graph()
    found = g.neighbors(np.array([0, 0, 3]), np.array([40, 31, 10]), 3)
    # node 0 before 40: events 0 (->1 @10 share: code 1), 2 (->2 @30 comment: 7),
    # 3 (<-2 @30 repost: 4); the event at 40 itself is not before 40
    assert found.node[0].tolist() == [1, 2, 2] and found.code[0].tolist() == [1, 7, 4]
    assert found.ts[0].tolist() == [10, 30, 30]
    # before 31 the same three; node 3 before 10: nothing (padding, query time kept)
    assert found.node[1].tolist() == [1, 2, 2]
    assert found.mask[2].tolist() == [False] * 3 and found.ts[2].tolist() == [10] * 3


def test_attribute_features_by_hand():
    g = graph(window=30)
    x = g.features(np.array([0, 0, 1]), np.array([40, 15, 40]))
    # user 0 before 40, window [10, 40): payments @15 (30) and @35 (100) -> count 2, amount 130;
    # all time also the browse @5 (amount 0); interactions before 40: events 0, 2, 3
    browse, cart, payment = (0.0, 0.0), (0.0, 0.0), (2.0, 130.0)
    expected = np.log1p([*browse, *cart, *payment, 1.0, 0.0, *cart, *payment, 3.0])
    assert x[0] == pytest.approx(expected)
    # user 0 before 15: the browse only (@5, inside [-15, 15)); one interaction (@10)
    assert x[1] == pytest.approx(np.log1p([1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]))
    # user 1 before 40: the cart @25 (20); interactions: events 0 and 1
    assert x[2] == pytest.approx(np.log1p([0, 0, 1, 20, 0, 0, 0, 0, 1, 20, 0, 0, 2]))


def test_a_later_event_never_changes_an_embedding():
    """Events at or after the query time (node 0 at 50) leave every tensor of its batch and
    its embedding unchanged; one just before changes it (so the comparison can fail)."""
    later = [(10, 0, 3, 50, "share"), (11, 2, 0, 55, "like"), (12, 1, 2, 60, "repost")]
    later_attrs = [(5, 0, 50, "payment", 900.0), (6, 2, 70, "cart", 5.0)]
    torch.manual_seed(0)
    model = DMGNN(DMGNN.make_config({"dim": 8, "edge_dim": 4}),
                  {"num_nodes": 4, "num_neighbors": 3, "layers": 2}).eval()

    def embed(edge_rows, attr_rows):
        batch = neighbourhood(graph(edge_rows, attr_rows), np.array([0, 1]),
                              np.array([50, 50]), 3, 2, 1.0)
        return batch, model.embed(batch)

    rows = [r for r in EDGES if r[3] < 50]
    base, z = embed(rows, ATTRIBUTES)
    leaked, z_leaked = embed(rows + later, ATTRIBUTES + later_attrs)
    assert all(torch.equal(base[key], leaked[key]) for key in base)
    assert torch.equal(z, z_leaked)
    _, z_before = embed(rows + [(10, 0, 3, 49, "share")], ATTRIBUTES)
    assert not torch.allclose(z[0], z_before[0])


def test_fixed_negatives_are_seeded_and_never_the_destination():
    ids, dst, pool = np.arange(200), np.arange(200) % 5, np.arange(5)
    first = fixed_negatives(ids, dst, pool, seed=3)
    assert np.array_equal(first, fixed_negatives(ids, dst, pool, seed=3))
    assert not np.array_equal(first, fixed_negatives(ids, dst, pool, seed=4))
    assert (first != dst).all() and set(first.tolist()) <= set(pool.tolist())
    # an event's negative depends on its id alone, not on the other events
    assert np.array_equal(fixed_negatives(ids[50:60], dst[50:60], pool, 3), first[50:60])


def test_historical_negatives_are_past_destinations_only():
    src = np.array([0, 1, 0, 2, 0, 3, 1, 0, 2, 0])
    dst = np.array([1, 2, 2, 0, 1, 0, 3, 3, 1, 2])
    ts = np.array([10, 20, 30, 30, 40, 50, 60, 70, 80, 90])
    past = PastDestinations(src, dst, ts, 4)
    assert past.before(0, 90).tolist() == [1, 2, 3] and past.before(0, 30).tolist() == [1]
    pool = np.arange(4)
    ids = np.array([9, 8, 2])
    hist, is_past = historical_negatives(ids, src[ids], dst[ids], ts[ids], past, pool, 3, 0)
    # event 9 (0->2 @90): past destinations 1, 3 (2 is the positive), then one pool fill
    assert sorted(hist[0, is_past[0]].tolist()) == [1, 3] and is_past[0].sum() == 2
    # event 8 (2->1 @80): node 2 linked to 0 before; event 2 (0->2 @30): only 1 (@10)
    assert hist[1, is_past[1]].tolist() == [0] and hist[2, is_past[2]].tolist() == [1]
    assert (hist != dst[ids][:, None]).all()  # fills avoid the positive too
    again, _ = historical_negatives(ids, src[ids], dst[ids], ts[ids], past, pool, 3, 0)
    assert np.array_equal(hist, again)
    # a destination linked at the event's own time is no negative: 0 met 3 and 1 before, then
    # 3 and 1 again at 30 (events 2 and 3), so event 3 (0->1 @30) keeps neither
    src, dst, ts = np.array([0, 0, 0, 0]), np.array([3, 1, 3, 1]), np.array([5, 10, 30, 30])
    both = PastDestinations(src, dst, ts, 4)
    h, p = historical_negatives(np.arange(2, 4), src[2:], dst[2:], ts[2:], both, pool, 2, 0)
    assert not p.any() and (h[1] != 1).all()
    h, p = historical_negatives(np.array([3]), src[3:], dst[3:], ts[3:], both, pool, 2, 0)
    assert h[0, p[0]].tolist() == [3]  # without event 2 in the split, 3 is a past destination
