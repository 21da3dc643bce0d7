"""Hand-made and synthetic ``shards/dmgnn`` tables for the dmgnn tests (no Spark).

``edges`` / ``attributes`` / ``tiers`` build contract tables from tuples; ``write_lake`` puts
them in a tmp lake. ``recency_stream`` makes interactions that repeat earlier ties, a tie's
chance of being picked halving every ``half_life`` days since the pair last interacted (or, with
``half_life=None``, every earlier tie equally likely); ``spend_stream`` makes weekly payments
whose tiers follow each user's spend in the window; ``mood_stream`` makes interactions whose
destination group follows the source's current mood, a mood lasting ``half_life`` days.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from contracts import dmgnn as contract

DAY = 86_400_000
WEEK = contract.WINDOW_DAYS * DAY


def edges(rows) -> pa.Table:
    """rows: (event_id, src, dst, ts, edge_type)."""
    names = contract.EDGES.names
    return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], contract.EDGES)


def attributes(rows) -> pa.Table:
    """rows: (event_id, user_id, ts, event_type, amount)."""
    names = contract.ATTRIBUTES.names
    return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows],
                                contract.ATTRIBUTES)


def tiers(rows) -> pa.Table:
    """rows: (user_id, window_start, window_end, tier)."""
    names = contract.TIERS.names
    return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], contract.TIERS)


def write_lake(path, edge_table: pa.Table, attribute_table: pa.Table, tier_table: pa.Table,
               dataset: str | None = None) -> str:
    from deltalake import write_deltalake

    paths = contract.tables(dataset)
    for name, table in (("edges", edge_table), ("attributes", attribute_table),
                        ("tiers", tier_table)):
        write_deltalake(str(path / "shards" / paths[name]), table, mode="overwrite")
    return str(path)


def recency_stream(nodes: int = 30, events: int = 1500, per_day: float = 50.0,
                   half_life: float | None = 1.0, repeat: float = 0.8, seed: int = 0
                   ) -> pa.Table:
    """Edges: a uniform source repeats one of its earlier ties with chance ``repeat`` (picked
    with weight 2^(-age / half_life), ages in days; uniformly when ``half_life`` is None),
    otherwise it meets a uniform new node. Ties are undirected; types are uniform."""
    rng = np.random.default_rng(seed)
    last = np.full((nodes, nodes), -np.inf)  # day of the pair's last interaction
    rows, day = [], 0.0
    for i in range(events):
        day += rng.exponential(1.0 / per_day)
        src = int(rng.integers(nodes))
        ties = np.flatnonzero(np.isfinite(last[src]))
        if ties.size and rng.random() < repeat:
            weight = (np.ones(ties.size) if half_life is None
                      else 2.0 ** (-(day - last[src, ties]) / half_life))
            dst = int(rng.choice(ties, p=weight / weight.sum()))
        else:
            dst = int(rng.choice([n for n in range(nodes) if n != src]))
        last[src, dst] = last[dst, src] = day
        rows.append((i, src, dst, int(day * DAY), contract.EDGE_TYPES[i % 4]))
    return edges(rows)


def spend_stream(users: int = 24, weeks: int = 8, seed: int = 0
                 ) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(edges, attributes, tiers): each user pays a few times a week, her weekly spend drawn
    around a level that drifts; browses and carts are noise; a tier row per user and week,
    ``contract.tier`` of the week's payments. Edges: a ring of weekly shares."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 4, users)
    attr_rows, tier_rows = [], []
    for week in range(weeks):
        level = np.clip(level + rng.normal(0, 1.0, users), 0, 4)
        for user in range(users):
            spend = 0.0
            target = [0.0, 15.0, 50.0, 110.0, 400.0][int(round(level[user]))]
            for _ in range(3):
                ts = week * WEEK + int(rng.uniform(0.05, 0.95) * WEEK)
                amount = target / 3 * rng.uniform(0.8, 1.2) if target else 0.0
                if amount:
                    attr_rows.append((ts, user, "payment", amount))
                    spend += amount
                attr_rows.append((ts + 1, user, "browse", float(rng.uniform(1, 500))))
            tier_rows.append((user, week * WEEK, (week + 1) * WEEK, contract.tier(spend)))
    attr_rows.sort()
    attr = [(i, u, ts, kind, a) for i, (ts, u, kind, a) in enumerate(attr_rows)]
    edge_rows = []
    for week in range(weeks):
        for user in range(users):
            edge_rows.append((week * WEEK + user * 1000, user, (user + 1) % users, "share"))
    edge_table = edges([(i, s, d, ts, kind) for i, (ts, s, d, kind) in
                        enumerate(sorted(edge_rows))])
    return edge_table, attributes(attr), tiers(tier_rows)


def mood_stream(nodes: int = 30, groups: int = 3, events: int = 1500, per_day: float = 100.0,
                half_life: float | None = 2.0, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(edges, attributes): node v is in group ``v % groups``, shown by one attribute event of
    type ``ATTRIBUTE_TYPES[group]`` at time 0. A uniform source links to a uniform member of
    the group of its mood; before each of its events the mood is redrawn with chance
    ``1 - 2^(-days since its last event / half_life)`` (never with ``half_life=None``). So
    the source's recent destinations tell its mood, older ones less so."""
    rng = np.random.default_rng(seed)
    group = np.arange(nodes) % groups
    mood = rng.integers(groups, size=nodes)
    last = np.zeros(nodes)
    rows, day = [], 0.0
    for i in range(events):
        day += rng.exponential(1.0 / per_day)
        src = int(rng.integers(nodes))
        if half_life is not None and rng.random() > 2.0 ** (-(day - last[src]) / half_life):
            mood[src] = rng.integers(groups)
        last[src] = day
        dst = int(rng.choice(np.flatnonzero((group == mood[src]) & (np.arange(nodes) != src))))
        rows.append((i, src, dst, int(day * DAY), contract.EDGE_TYPES[i % 4]))
    shown = [(v, v, 0, contract.ATTRIBUTE_TYPES[group[v]], 1.0) for v in range(nodes)]
    return edges(rows), attributes(shown)
