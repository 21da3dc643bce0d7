"""InfNet shards: the Spark builder against a plain per-query Python BFS (networkx).

    python benchmarks/infnet_shards.py --lake LAKE [--queries 200] [--fanout 20] [--obs-weeks 4]

Both build the same thing for the same sample of queries (at most ``--queries`` per prediction
day): the 2-hop weekly sub-graphs with the fanout cap, the edges among the sampled nodes with
their PI-bin sums, and the purchase-history node features. The Spark side is timed end to end
(``build_infnet_shards`` until every row is materialised, Spark start-up excluded); the Python
side loads the raw tables once with pyarrow (load time printed apart), builds one networkx graph
per (day, week) and then loops over queries. It prints per-query times, the ratio, and whether
the two agree on every query's weekly node sets. A script, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.lakeio import read_table  # noqa: E402


def python_build(lake: Path, queries: list[dict], cfg, pi_edges: list[float]) -> tuple:
    """Per-query BFS over networkx week graphs; returns ({qid: {week: nodes}}, per-query s)."""
    t0 = time.perf_counter()
    shares = read_table(lake / "raw" / "shares").to_pandas()
    purchases = read_table(lake / "raw" / "purchases").to_pandas()
    items = read_table(lake / "raw" / "items").to_pandas()
    load_s = time.perf_counter() - t0
    items["pi_bin"] = np.searchsorted(np.array(pi_edges), items["price_index"].to_numpy(),
                                      side="left")
    pi_bin = dict(zip(items["item_id"], items["pi_bin"], strict=True))
    shares["day"] = shares["ts"].dt.tz_convert("UTC").dt.date
    by_user = {u: g for u, g in purchases.groupby("user_id")}

    graphs: dict[tuple, nx.DiGraph] = {}
    per_query, nodes_out = [], {}
    for q in queries:
        start = time.perf_counter()
        day, u, p = q["query_day"], q["user_id"], q["item_id"]
        qts = pd.Timestamp(q["query_ts"])
        qts = qts.tz_localize("UTC") if qts.tzinfo is None else qts
        lo = day - dt.timedelta(days=7 * cfg.obs_weeks)
        recv = shares[(shares.receiver_id == u) & (shares.item_id == p) & (shares.ts <= qts)
                      & (shares.day >= lo) & (shares.sender_id != u)]
        seeds = {u} | set(recv.sender_id.tolist())
        weeks = {}
        for w in range(cfg.obs_weeks):
            key = (day, w)
            if key not in graphs:  # one graph per (day, week), shared by that day's queries
                a = day - dt.timedelta(days=7 * (cfg.obs_weeks - w))
                b = a + dt.timedelta(days=7)
                rows = shares[(shares.day >= a) & (shares.day < b)]
                g = nx.DiGraph()
                for s, r, item, ts in zip(rows.sender_id, rows.receiver_id, rows.item_id,
                                          rows.ts, strict=True):
                    if g.has_edge(s, r):
                        e = g[s][r]
                        e["last"] = max(e["last"], ts)
                        e["attr"][pi_bin[item]] += 1
                    else:
                        attr = [0.0] * cfg.pi_bins
                        attr[pi_bin[item]] += 1
                        g.add_edge(s, r, last=ts, attr=attr)
                graphs[key] = g
            g = graphs[key]
            und = g.to_undirected(as_view=True)
            seen, frontier = set(seeds), list(seeds)
            for _hop in range(2):
                nxt = set()
                for node in frontier:
                    if node not in und:
                        continue
                    nbrs = sorted(
                        und[node],
                        key=lambda v, node=node: (-_last(g, node, v).value, v),
                    )[: cfg.fanout]
                    nxt.update(v for v in nbrs if v not in seen)
                seen |= nxt
                frontier = list(nxt)
            sub = g.subgraph(seen)
            _edges = [(s, r, d["attr"]) for s, r, d in sub.edges(data=True)]
            weeks[w] = sorted(seen)
        # purchase history features of every sampled node, strictly before the query
        all_nodes = set().union(*weeks.values())
        hist = qts - dt.timedelta(days=cfg.history_days)
        for node in all_nodes:
            rows = by_user.get(node)
            if rows is None:
                continue
            rows = rows[(rows.ts < qts) & (rows.ts >= hist)]
            spend = np.zeros(cfg.pi_bins)
            for item, amount in zip(rows.item_id, rows.amount, strict=True):
                spend[pi_bin[item]] += amount
        per_query.append(time.perf_counter() - start)
        nodes_out[q["query_id"]] = weeks
    return nodes_out, per_query, load_s


def _last(g: nx.DiGraph, a, b):
    """Latest time of the edges between a and b in either direction."""
    times = [g[x][y]["last"] for x, y in ((a, b), (b, a)) if g.has_edge(x, y)]
    return max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--queries", type=int, default=200, help="per prediction day")
    parser.add_argument("--fanout", type=int, default=20)
    parser.add_argument("--obs-weeks", type=int, default=4)
    parser.add_argument("--master", default=None)
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from pipeline.lake import Lake
    from pipeline.session import get_spark
    from pipeline.shards.infnet import InfNetShardConfig, build_infnet_shards

    lake = Lake(args.lake)
    cfg = InfNetShardConfig(queries=args.queries, fanout=args.fanout, obs_weeks=args.obs_weeks)
    spark = get_spark("bench-infnet-shards", master=args.master,
                      conf={"spark.ui.showConsoleProgress": "false"})
    start = time.perf_counter()
    rows, capped, facts = build_infnet_shards(
        spark, lake.read(spark, "raw", "shares"), lake.read(spark, "raw", "purchases"),
        lake.read(spark, "raw", "items"), cfg)
    table = rows.select(
        "query_id", "user_id", "item_id", "query_day", "query_ts", "node_ids",
        F.col("weeks.week").alias("week_no"), F.col("weeks.nodes").alias("week_nodes"),
    ).toPandas()  # a benchmark sample: a few hundred rows
    spark_s = time.perf_counter() - start
    n = len(table)
    if n == 0:
        print("no queries in this lake")
        return 1
    print(f"spark builder: {n} queries in {spark_s:.1f} s = {1000 * spark_s / n:.1f} ms/query "
          f"(cores: {spark.sparkContext.defaultParallelism})")

    queries = [
        {"query_id": r.query_id, "user_id": r.user_id, "item_id": r.item_id,
         "query_day": r.query_day, "query_ts": r.query_ts}
        for r in table.itertuples()
    ]
    py_nodes, per_query, load_s = python_build(Path(args.lake), queries, cfg,
                                               facts["pi_bin_edges"])
    py_total = sum(per_query)
    print(f"python BFS:    {n} queries in {py_total:.1f} s = {1000 * py_total / n:.1f} ms/query "
          f"(+ {load_s:.1f} s loading the raw tables with pyarrow)")
    ms = sorted(1000 * t for t in per_query)
    print(f"  per query ms: median {statistics.median(ms):.1f}, p95 {ms[int(0.95 * len(ms))]:.1f}, "
          f"max {ms[-1]:.1f}; first query (builds week graphs) {1000 * per_query[0]:.1f}")
    print(f"ratio python / spark per query: {py_total / spark_s:.2f} "
          f"(with loading: {(py_total + load_s) / spark_s:.2f})")

    agree = 0
    disagree = defaultdict(int)
    for r in table.itertuples():
        ids = r.node_ids
        spark_weeks = {int(w): sorted(int(ids[i]) for i in idx)
                       for w, idx in zip(r.week_no, r.week_nodes, strict=True)}
        if spark_weeks == {w: [int(v) for v in nodes]
                           for w, nodes in py_nodes[r.query_id].items()}:
            agree += 1
        else:
            disagree["node sets"] += 1
    print(f"weekly node sets agree on {agree} / {n} queries {dict(disagree) or ''}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
