"""InfNet shards: the Spark builder's per-query cost against a plain per-query BFS in Python.

    python -m jobs.build_shards --lake LAKE --task infnet [--queries N]      # the Spark side
    python benchmarks/infnet_shards.py --lake LAKE [--sample 5000] [--seed 0] [--networkx 500]

The Spark figure is the job's own: ``build_seconds`` (build and write of ``shards/infnet``,
session start-up excluded) over the queries it built, from the manifest. The Python side takes a
seeded sample of those very queries and rebuilds them from the raw tables with numpy, one query
at a time: its seeds, the 4 weekly BFS to depth 2 with the same fanout rule (the ``fanout`` most
recently active neighbours, ties to the lower id), the week's edges among the sampled nodes with
their PI-bin sums, the purchase-history node features and the label. What it builds once and
shares between queries, like Spark does, is timed apart: loading the rows of the observation and
prediction days with pyarrow, and per (query day, week) a CSR adjacency sorted by recency (so the
fanout cap is a slice) plus a CSR of the week's directed share records for the edge features.

It prints load, build and per-query times (mean, median, p95), the Spark per-query time, their
ratio, and how many sampled queries agree with the Spark rows on every weekly node set, and on
edges, node features, label and fanout count. ``--networkx N`` also rebuilds the first N
sampled queries with the weekly BFS and edges on networkx graphs (neighbours sorted at every
visit), the comparator the issue names, with the same checks. ``--pyg N`` rebuilds the first N
with PyG's ``k_hop_subgraph`` and ``subgraph`` on each week's whole edge index (the other
comparator the issue names); PyG has no fanout cap, so its node and edge checks are over the
queries whose cap did not bite. A script, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.lakeio import read_table, snapshot_files  # noqa: E402

US_PER_DAY = 86_400_000_000


def _us(value: dt.date | dt.datetime) -> int:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def read_rows(table: Path, columns: list[str], start_us: int, end_us: int) -> dict[str, np.ndarray]:
    """Rows with start <= ts < end as numpy arrays, reading only the weeks' partition folders."""
    first_monday = dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC).date()
    first_monday -= dt.timedelta(days=first_monday.weekday())
    last_day = dt.datetime.fromtimestamp(end_us / 1e6, dt.UTC).date()
    pieces = []
    for path in snapshot_files(table):
        part = next((p for p in Path(path).parts if p.startswith("week_start=")), None)
        if part is not None:
            week = dt.date.fromisoformat(part.split("=", 1)[1])
            if week < first_monday or week > last_day:
                continue
        piece = pq.ParquetFile(path).read(columns=columns)
        ts = piece.column("ts").cast(pa.int64())
        keep = pc.and_(pc.greater_equal(ts, start_us), pc.less(ts, end_us))
        pieces.append(piece.filter(keep))
    rows = pa.concat_tables(pieces)
    out = {c: rows.column(c).to_numpy() for c in columns if c != "ts"}
    out["ts"] = rows.column("ts").cast(pa.int64()).to_numpy()
    return out


class Csr:
    """Values grouped by compact key k < n: row k is ``[indptr[k], indptr[k+1])`` of each array."""

    def __init__(self, keys: np.ndarray, n: int, order: np.ndarray, **values: np.ndarray):
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=n), out=self.indptr[1:])
        for name, array in values.items():
            setattr(self, name, array[order])


class World:
    """The raw rows the sample needs, with compact node ids (sorted, so order is kept)."""

    def __init__(self, lake: Path, info: dict, query_days: list[dt.date]):
        cfg = info["config"]
        self.cfg = cfg
        w = cfg["obs_weeks"]
        obs_start = _us(query_days[0] - dt.timedelta(days=7 * w))
        pred_end = _us(query_days[-1] + dt.timedelta(days=1))
        shares = read_rows(lake / "raw" / "shares", ["sender_id", "receiver_id", "item_id", "ts"],
                           obs_start, pred_end)
        items = read_table(lake / "raw" / "items",
                           columns=["item_id", "top_category", "price_index"])
        hist_start = obs_start - cfg["history_days"] * US_PER_DAY
        label_end = pred_end + int(cfg["label_hours"] * 3600 * 1e6) + 1
        purchases = read_rows(lake / "raw" / "purchases", ["user_id", "item_id", "ts", "amount"],
                              hist_start, label_end)

        item_ids = items.column("item_id").to_numpy()
        order = np.argsort(item_ids)
        self.item_ids = item_ids[order]
        pi = items.column("price_index").to_numpy()[order]
        self.item_bin = np.searchsorted(np.array(info["pi_bin_edges"]), pi, side="left")
        self.item_cat = items.column("top_category").to_numpy()[order]

        self.nodes = np.unique(np.concatenate([np.unique(shares["sender_id"]),
                                               np.unique(shares["receiver_id"])]))
        # int32 / int8 where they fit: a 100M-record world's 31 days are ~40M share rows.
        self.src = np.searchsorted(self.nodes, shares.pop("sender_id")).astype(np.int32)
        self.dst = np.searchsorted(self.nodes, shares.pop("receiver_id")).astype(np.int32)
        self.item = shares.pop("item_id")
        self.ts = shares.pop("ts")
        self.day = (self.ts // US_PER_DAY).astype(np.int32)
        pos = np.minimum(np.searchsorted(self.item_ids, self.item), len(self.item_ids) - 1)
        self.known = self.item_ids[pos] == self.item  # shares of unknown items are not edges
        self.bin = self.item_bin[pos].astype(np.int8)
        del pos
        # Shares by (receiver, item) for the seeds.
        self.recv_key = self.dst.astype(np.int64) * (int(self.item.max()) + 1) + self.item
        self.recv_order = np.argsort(self.recv_key, kind="stable")
        self.recv_sorted = self.recv_key[self.recv_order]
        self.item_span = int(self.item.max()) + 1
        # Purchases by user, only users the shares know (every sampled node is one).
        users = np.searchsorted(self.nodes, purchases["user_id"])
        users = np.minimum(users, len(self.nodes) - 1)
        keep = self.nodes[users] == purchases["user_id"]
        users = users[keep]
        p_item = purchases["item_id"][keep]
        p_pos = np.minimum(np.searchsorted(self.item_ids, p_item), len(self.item_ids) - 1)
        p_known = self.item_ids[p_pos] == p_item
        order = np.lexsort((purchases["ts"][keep], users))
        self.buys = Csr(users, len(self.nodes), order, ts=purchases["ts"][keep],
                        amount=purchases["amount"][keep], item=p_item,
                        bin=np.where(p_known, self.item_bin[p_pos], -1))

    def week_graph(self, query_day: dt.date, week: int) -> tuple[Csr, Csr]:
        """(undirected adjacency sorted by recency, directed records sorted by (src, dst))."""
        w = self.cfg["obs_weeks"]
        first = (query_day - dt.date(1970, 1, 1)).days - 7 * (w - week)
        mask = (self.day >= first) & (self.day < first + 7) & self.known
        src, dst, ts, bins = self.src[mask], self.dst[mask], self.ts[mask], self.bin[mask]
        n = len(self.nodes)
        node = np.concatenate([src, dst])
        nbr = np.concatenate([dst, src])
        both_ts = np.concatenate([ts, ts])
        order = np.lexsort((both_ts, nbr, node))
        node, nbr, both_ts = node[order], nbr[order], both_ts[order]
        last = np.ones(len(node), dtype=bool)  # the latest share of each (node, nbr) pair
        last[:-1] = (node[1:] != node[:-1]) | (nbr[1:] != nbr[:-1])
        node, nbr, both_ts = node[last], nbr[last], both_ts[last]
        adj = Csr(node, n, np.lexsort((nbr, -both_ts, node)), nbr=nbr)
        out = Csr(src, n, np.lexsort((dst, src)), dst=dst, bin=bins)
        return adj, out


def query_seeds(world: World, q: dict) -> set[int]:
    """u and the senders who shared p with u in the observation weeks up to the query (compact
    node ids): the BFS seeds every comparator starts from."""
    u = int(np.searchsorted(world.nodes, q["user_id"]))
    day0 = (q["query_day"] - dt.date(1970, 1, 1)).days
    key = u * world.item_span + q["item_id"]
    lo, hi = np.searchsorted(world.recv_sorted, [key, key + 1])
    recs = world.recv_order[lo:hi]
    recs = recs[(world.ts[recs] <= q["query_ts"])
                & (world.day[recs] >= day0 - 7 * world.cfg["obs_weeks"])
                & (world.src[recs] != u)]
    return {u} | set(world.src[recs].tolist())


def build_query(world: World, graphs: dict, q: dict, fanout: int) -> dict:
    """One query, from scratch: seeds, weekly BFS, edges, node features, label."""
    cfg = world.cfg
    w, n_bins = cfg["obs_weeks"], cfg["pi_bins"]
    seeds = query_seeds(world, q)

    weeks, n_capped = {}, 0
    for week in range(w):
        adj, out = graphs[week]
        seen, frontier = set(seeds), sorted(seeds)
        for _hop in range(2):
            found = set()
            for node in frontier:
                a, b = adj.indptr[node], adj.indptr[node + 1]
                if b - a > fanout:
                    n_capped += 1
                    b = a + fanout
                found.update(adj.nbr[a:b].tolist())
            frontier = sorted(found - seen)
            seen.update(frontier)
        members = np.fromiter(seen, dtype=np.int64, count=len(seen))
        starts, ends = out.indptr[members], out.indptr[members + 1]
        idx = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        srcs = np.repeat(members, ends - starts)
        inside = np.isin(out.dst[idx], members)
        e_src, e_dst, e_bin = srcs[inside], out.dst[idx][inside], out.bin[idx][inside]
        pairs, inverse = np.unique(np.stack([e_src, e_dst], 1), axis=0, return_inverse=True)
        attr = np.zeros((len(pairs), n_bins), dtype=np.float32)
        np.add.at(attr, (inverse.ravel(), e_bin), 1.0)
        weeks[week] = (set(world.nodes[members].tolist()),
                       {(int(world.nodes[s]), int(world.nodes[d])): a.tolist()
                        for (s, d), a in zip(pairs, attr, strict=True)})
    return features(world, {"weeks": weeks, "fanout_capped": n_capped}, q)


def features(world: World, out: dict, q: dict) -> dict:
    """Node features of the sampled nodes and the label, strictly from the raw purchases."""
    cfg = world.cfg
    n_bins = cfg["pi_bins"]
    qts, p, weeks = q["query_ts"], q["item_id"], out["weeks"]
    u = int(np.searchsorted(world.nodes, q["user_id"]))
    all_nodes = np.array(sorted(set().union(*(nodes for nodes, _ in weeks.values()))))
    compact = np.searchsorted(world.nodes, all_nodes)
    buys = world.buys
    hist = qts - cfg["history_days"] * US_PER_DAY
    recent = qts - cfg["recent_days"] * US_PER_DAY
    x = {}
    for node_id, c in zip(all_nodes.tolist(), compact.tolist(), strict=True):
        a, b = buys.indptr[c], buys.indptr[c + 1]
        ts = buys.ts[a:b]
        m = (ts < qts) & (ts >= hist) & (buys.bin[a:b] >= 0)
        amount, bins = buys.amount[a:b][m], buys.bin[a:b][m]
        spend = np.bincount(bins, weights=amount, minlength=n_bins)
        x[node_id] = np.concatenate([
            np.log1p(spend), [np.log1p(amount[ts[m] >= recent].sum())],
            [float((buys.item[a:b][m] == p).any())],
        ]).astype(np.float32)
    a, b = buys.indptr[u], buys.indptr[u + 1]
    ts = buys.ts[a:b]
    horizon = int(cfg["label_hours"] * 3600 * 1e6)
    label = int(((buys.item[a:b] == p) & (ts > qts) & (ts <= qts + horizon)).any())
    return {**out, "x": x, "label": label}


def nx_week_graph(world: World, query_day: dt.date, week: int) -> nx.DiGraph:
    """The week's share edges as a networkx DiGraph: last time and PI-bin counts per pair."""
    w = world.cfg["obs_weeks"]
    first = (query_day - dt.date(1970, 1, 1)).days - 7 * (w - week)
    mask = (world.day >= first) & (world.day < first + 7) & world.known
    g = nx.DiGraph()
    n_bins = world.cfg["pi_bins"]
    for s, r, ts, b in zip(world.src[mask].tolist(), world.dst[mask].tolist(),
                           world.ts[mask].tolist(), world.bin[mask].tolist(), strict=True):
        if g.has_edge(s, r):
            e = g[s][r]
            e["last"] = max(e["last"], ts)
            e["attr"][b] += 1.0
        else:
            attr = [0.0] * n_bins
            attr[b] += 1.0
            g.add_edge(s, r, last=ts, attr=attr)
    return g


def build_query_nx(world: World, graphs: dict, q: dict, fanout: int) -> dict:
    """``build_query`` with the weekly BFS and edges done on networkx graphs (the issue's
    "plain per-query BFS"): neighbours sorted by recency at every visit, edges from subgraph."""
    cfg = world.cfg
    seeds = query_seeds(world, q)
    weeks, n_capped = {}, 0
    for week in range(cfg["obs_weeks"]):
        g, und = graphs[week]
        seen, frontier = set(seeds), sorted(seeds)
        for _hop in range(2):
            found = set()
            for node in frontier:
                if node not in und:
                    continue
                nbrs = sorted(und[node], key=lambda v, a=node: (-max(
                    g[x][y]["last"] for x, y in ((a, v), (v, a)) if g.has_edge(x, y)), v))
                if len(nbrs) > fanout:
                    n_capped += 1
                found.update(nbrs[:fanout])
            frontier = sorted(found - seen)
            seen.update(frontier)
        sub = g.subgraph(seen)
        weeks[week] = ({int(world.nodes[v]) for v in seen},
                       {(int(world.nodes[a]), int(world.nodes[b])): list(d["attr"])
                        for a, b, d in sub.edges(data=True)})
    return features(world, {"weeks": weeks, "fanout_capped": n_capped}, q)


def pyg_week_graph(world: World, query_day: dt.date, week: int) -> dict:
    """The week's distinct share pairs (directed, PI-bin sums) and both directions of them."""
    import torch
    from torch_geometric.utils import coalesce

    w, n_bins = world.cfg["obs_weeks"], world.cfg["pi_bins"]
    first = (query_day - dt.date(1970, 1, 1)).days - 7 * (w - week)
    mask = (world.day >= first) & (world.day < first + 7) & world.known
    edge_index = torch.from_numpy(np.stack([world.src[mask], world.dst[mask]]).astype(np.int64))
    attr = torch.nn.functional.one_hot(torch.from_numpy(world.bin[mask].astype(np.int64)),
                                       n_bins).float()
    n = len(world.nodes)
    edge_index, attr = coalesce(edge_index, attr, num_nodes=n, reduce="sum")
    both = coalesce(torch.cat([edge_index, edge_index.flip(0)], 1), num_nodes=n)
    return {"directed": edge_index, "attr": attr, "both": both, "n": n}


def build_query_pyg(world: World, graphs: dict, q: dict) -> dict:
    """``build_query`` with ``k_hop_subgraph`` (2 hops, no fanout cap) and ``subgraph``."""
    import torch
    from torch_geometric.utils import k_hop_subgraph, subgraph

    cfg = world.cfg
    seeds = torch.tensor(sorted(query_seeds(world, q)), dtype=torch.long)
    weeks = {}
    for week in range(cfg["obs_weeks"]):
        g = graphs[week]
        subset, _, _, _ = k_hop_subgraph(seeds, 2, g["both"], num_nodes=g["n"])
        subset = torch.unique(torch.cat([subset, seeds]))  # isolated seeds stay in
        e, a = subgraph(subset, g["directed"], g["attr"], num_nodes=g["n"])
        ids = world.nodes
        weeks[week] = ({int(ids[v]) for v in subset.tolist()},
                       {(int(ids[s]), int(ids[d])): row
                        for (s, d), row in zip(e.t().tolist(), a.tolist(), strict=True)})
    return features(world, {"weeks": weeks, "fanout_capped": 0}, q)


def spark_row(row: dict) -> dict:
    ids = row["node_ids"]
    weeks = {}
    for wk in row["weeks"]:
        edges = {(ids[s], ids[d]): list(a)
                 for s, d, a in zip(wk["edge_src"], wk["edge_dst"], wk["edge_attr"], strict=True)}
        weeks[wk["week"]] = ({ids[i] for i in wk["nodes"]}, edges)
    x = {n: np.array(v[:-3], dtype=np.float32) for n, v in zip(ids, row["node_x"], strict=True)}
    return {"weeks": weeks, "x": x, "label": row["label"], "fanout_capped": row["fanout_capped"]}


def agreement(rows: list[dict], results: dict) -> str:
    agree = {"node sets": 0, "edges": 0, "node features": 0, "label": 0, "fanout count": 0}
    for row in rows:
        mine, theirs = results[row["query_id"]], spark_row(row)
        if set(mine["weeks"]) == set(theirs["weeks"]) and all(
                mine["weeks"][k][0] == theirs["weeks"][k][0] for k in theirs["weeks"]):
            agree["node sets"] += 1
        if all(mine["weeks"][k][1] == theirs["weeks"][k][1] for k in theirs["weeks"]):
            agree["edges"] += 1
        if set(mine["x"]) == set(theirs["x"]) and all(
                np.allclose(mine["x"][k], theirs["x"][k], rtol=1e-5, atol=1e-5)
                for k in theirs["x"]):
            agree["node features"] += 1
        agree["label"] += mine["label"] == theirs["label"]
        agree["fanout count"] += mine["fanout_capped"] == theirs["fanout_capped"]
    return ", ".join(f"{k} {v} / {len(rows)}" for k, v in agree.items())


def compare(name: str, rows: list[dict], make_graphs, build_one, spark_ms: float | None,
            uncapped_only: bool = False) -> None:
    """Rebuild ``rows`` one query at a time with another comparator; print its times, its ratio
    to Spark and its agreement with the Spark rows (only uncapped queries if it has no cap)."""
    results, times, build_s = {}, [], 0.0
    for query_day in sorted({r["query_day"] for r in rows}):
        t0 = time.perf_counter()
        graphs = make_graphs(query_day)
        build_s += time.perf_counter() - t0
        for row in (r for r in rows if r["query_day"] == query_day):
            t0 = time.perf_counter()
            results[row["query_id"]] = build_one(graphs, _query(row, query_day))
            times.append(time.perf_counter() - t0)
        del graphs
    ms = sorted(1000 * t for t in times)
    mean = statistics.fmean(ms)
    print(f"{name}: {len(ms)} queries, week graphs {build_s:.1f} s; per query ms: "
          f"mean {mean:.2f}, median {statistics.median(ms):.2f}, "
          f"p95 {ms[int(0.95 * (len(ms) - 1))]:.2f}")
    if spark_ms:
        print(f"ratio {name} / spark per query: {mean / spark_ms:.2f}x (mean)")
    if uncapped_only:
        rows = [r for r in rows if r["fanout_capped"] == 0]
        print(f"{name} agreement on the {len(rows)} queries the cap did not bite: "
              + agreement(rows, results))
    else:
        print(f"{name} agreement with the spark rows: " + agreement(rows, results))


def _query(row: dict, query_day: dt.date) -> dict:
    return {"user_id": row["user_id"], "item_id": row["item_id"], "query_day": query_day,
            "query_ts": _us(row["query_ts"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--sample", type=int, default=5000, help="queries rebuilt in Python")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--networkx", type=int, default=0,
                        help="also rebuild this many of the sampled queries with networkx")
    parser.add_argument("--pyg", type=int, default=0,
                        help="also rebuild this many of them with PyG k_hop_subgraph")
    args = parser.parse_args()
    lake = Path(args.lake)
    info = json.loads(read_table(lake / "shards" / "infnet_manifest")
                      .column("json")[0].as_py())
    cfg = info["config"]
    fanout = cfg["fanout"]

    t0 = time.perf_counter()
    keys = read_table(lake / "shards" / "infnet", columns=["query_id"]).column("query_id")
    rng = np.random.default_rng(args.seed)
    pick = set(rng.choice(keys.to_numpy(), size=min(args.sample, len(keys)), replace=False)
               .tolist())
    rows = []
    for path in snapshot_files(lake / "shards" / "infnet"):
        part = pq.ParquetFile(path).read()
        part = part.filter(pc.is_in(part.column("query_id"), pa.array(sorted(pick))))
        rows.extend(part.to_pylist())
    query_days = sorted({r["query_day"] for r in rows})
    all_days = [dt.date.fromisoformat(info["pred_start"]) + dt.timedelta(days=i)
                for i in range(cfg["train_days"] + cfg["test_days"])]
    sample_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    world = World(lake, info, all_days)
    load_s = time.perf_counter() - t0

    per_query, build_s, results = [], 0.0, {}
    for query_day in query_days:
        t0 = time.perf_counter()
        graphs = {week: world.week_graph(query_day, week) for week in range(cfg["obs_weeks"])}
        build_s += time.perf_counter() - t0
        for row in (r for r in rows if r["query_day"] == query_day):
            t0 = time.perf_counter()
            results[row["query_id"]] = build_query(world, graphs, _query(row, query_day), fanout)
            per_query.append(time.perf_counter() - t0)
        del graphs

    n = len(per_query)
    ms = sorted(1000 * t for t in per_query)
    mean_ms = statistics.fmean(ms)
    spark_s = info.get("build_seconds")
    spark_ms = 1000 * spark_s / info["queries"] if spark_s else None
    print(f"sample: {n} of {len(keys)} queries ({sample_s:.1f} s to pick them from the shards)")
    print(f"python: load {load_s:.1f} s ({len(world.ts):,} share rows, "
          f"{len(world.buys.ts):,} purchases), week graphs {build_s:.1f} s "
          f"({len(query_days)} days x {cfg['obs_weeks']} weeks)")
    print(f"python per query ms: mean {mean_ms:.2f}, median {statistics.median(ms):.2f}, "
          f"p95 {ms[int(0.95 * (n - 1))]:.2f}, max {ms[-1]:.2f}")
    if spark_ms:
        print(f"spark per query ms: {spark_ms:.3f} ({info['queries']:,} queries in "
              f"{spark_s:.1f} s, build and write)")
        print(f"ratio python / spark per query: {mean_ms / spark_ms:.2f}x (mean); "
              f"with the python load and graph builds spread over the sample: "
              f"{(mean_ms + 1000 * (load_s + build_s) / n) / spark_ms:.2f}x")

    print("agreement with the spark rows: " + agreement(rows, results))

    if args.networkx:
        def nx_graphs(query_day: dt.date) -> dict:
            graphs = {}
            for week in range(cfg["obs_weeks"]):
                g = nx_week_graph(world, query_day, week)
                # The undirected view once per graph: building it checks every node (~50 ms).
                graphs[week] = (g, g.to_undirected(as_view=True))
            return graphs

        compare("networkx", rows[: args.networkx], nx_graphs,
                lambda graphs, q: build_query_nx(world, graphs, q, fanout), spark_ms)

    if args.pyg:
        compare("pyg k_hop_subgraph", rows[: args.pyg],
                lambda day: {week: pyg_week_graph(world, day, week)
                             for week in range(cfg["obs_weeks"])},
                lambda graphs, q: build_query_pyg(world, graphs, q), spark_ms,
                uncapped_only=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
