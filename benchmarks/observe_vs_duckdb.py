"""Wall time of the observe job (Spark) vs the same statistics as DuckDB SQL.

    .venv/bin/python benchmarks/observe_vs_duckdb.py --lake LAKE [--repeat 3] [--skip-spark]
        [--threads N]

Both engines read the same committed Parquet files: Spark through ``Lake.read`` (the Delta
snapshot's file list), DuckDB through ``delta_scan`` with the delta extension shipped in the
``duckdb_extension_delta`` wheel (loaded offline). The SQL mirrors the definitions in
``pipeline/stats`` (last-touch conversion in a 7-day window, merged-graph degrees, close
neighbours from adopters, 2-hop deltas, item-week grid, rising stars, MDSW, hubs) and its
results are checked against the Spark tables where both exist. Prints wall times, the load
average at each start (the machine is shared: compare rounds run back to back), medians over
``--repeat`` rounds and the ratio. DuckDB computes a subset of what observe does (printed).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SQL = {
    "origin": """
        CREATE OR REPLACE TEMP TABLE origin AS
        SELECT least((SELECT min(week_start) FROM shares), (SELECT min(week_start) FROM purchases),
                     (SELECT min(week_start) FROM browses)) AS d
    """,
    "shares_w": """
        CREATE OR REPLACE TEMP TABLE sh AS
        SELECT row_number() OVER () AS rid, s.sender_id, s.receiver_id, s.item_id, s.ts,
               CAST(floor(date_diff('day', (SELECT d FROM origin), CAST(s.ts AS DATE)) / 7)
                    AS INT) + 1 AS week
        FROM shares s
    """,
    "purchases_w": """
        CREATE OR REPLACE TEMP TABLE pu AS
        SELECT p.user_id, p.item_id, p.ts,
               CAST(floor(date_diff('day', (SELECT d FROM origin), CAST(p.ts AS DATE)) / 7)
                    AS INT) + 1 AS week
        FROM purchases p
    """,
    # last-touch conversion: window [ts, min(ts + 7 days, next record of the same key))
    "share_conversion": """
        CREATE OR REPLACE TEMP TABLE shc AS
        WITH nxt AS (
            SELECT a.rid, min(b.ts) AS next_ts
            FROM sh a JOIN sh b ON a.receiver_id = b.receiver_id AND a.item_id = b.item_id
                               AND b.ts > a.ts
            GROUP BY a.rid
        ), win AS (
            SELECT sh.*, CASE WHEN nxt.next_ts IS NOT NULL
                              AND nxt.next_ts < sh.ts + INTERVAL 7 DAY
                         THEN nxt.next_ts ELSE sh.ts + INTERVAL 7 DAY END AS end_ts
            FROM sh LEFT JOIN nxt USING (rid)
        )
        SELECT win.*, EXISTS (
            SELECT 1 FROM pu WHERE pu.user_id = win.receiver_id AND pu.item_id = win.item_id
                             AND pu.ts >= win.ts AND pu.ts < win.end_ts) AS converted
        FROM win
    """,
    "browse_conversion": """
        CREATE OR REPLACE TEMP TABLE brc AS
        WITH br AS (SELECT row_number() OVER () AS rid, user_id, item_id, ts FROM browses),
        nxt AS (
            SELECT a.rid, min(b.ts) AS next_ts
            FROM br a JOIN br b ON a.user_id = b.user_id AND a.item_id = b.item_id
                               AND b.ts > a.ts
            GROUP BY a.rid
        ), win AS (
            SELECT br.*, CASE WHEN nxt.next_ts IS NOT NULL
                              AND nxt.next_ts < br.ts + INTERVAL 7 DAY
                         THEN nxt.next_ts ELSE br.ts + INTERVAL 7 DAY END AS end_ts
            FROM br LEFT JOIN nxt USING (rid)
        )
        SELECT win.*, EXISTS (
            SELECT 1 FROM pu WHERE pu.user_id = win.user_id AND pu.item_id = win.item_id
                             AND pu.ts >= win.ts AND pu.ts < win.end_ts) AS converted
        FROM win
    """,
    "conversion_index": """
        CREATE OR REPLACE TEMP TABLE conversion_index AS
        WITH b AS (SELECT item_id, count(*) AS browse_records,
                          sum(converted::INT) AS browse_conversions FROM brc GROUP BY item_id),
             s AS (SELECT item_id, count(*) AS share_records,
                          sum(converted::INT) AS share_conversions FROM shc GROUP BY item_id)
        SELECT item_id, i.top_category, i.leaf_category, i.price_index,
               browse_records, browse_conversions,
               browse_conversions / browse_records AS ci_browse,
               share_records, share_conversions, share_conversions / share_records AS ci_taocode
        FROM b FULL JOIN s USING (item_id) LEFT JOIN items i USING (item_id)
    """,
    "ci_lift_by_leaf": """
        CREATE OR REPLACE TEMP TABLE ci_lift_by_leaf AS
        SELECT leaf_category, count(*) AS items, avg(price_index) AS mean_price_index,
               sum(browse_conversions) / sum(browse_records) AS ci_browse,
               sum(share_conversions) / sum(share_records) AS ci_taocode,
               (sum(share_conversions) / sum(share_records))
                 / (sum(browse_conversions) / sum(browse_records)) - 1 AS ci_lift
        FROM conversion_index
        WHERE browse_records IS NOT NULL AND share_records IS NOT NULL
        GROUP BY leaf_category HAVING sum(browse_conversions) > 0
    """,
    "user_degree": """
        CREATE OR REPLACE TEMP TABLE user_degree AS
        WITH e AS (SELECT DISTINCT sender_id, receiver_id FROM sh WHERE sender_id <> receiver_id)
        SELECT user_id, sum(i) AS in_degree, sum(o) AS out_degree, sum(i) + sum(o) AS degree
        FROM (SELECT receiver_id AS user_id, 1 AS i, 0 AS o FROM e
              UNION ALL SELECT sender_id, 0, 1 FROM e)
        GROUP BY user_id
    """,
    "degree_gap_ci": """
        CREATE OR REPLACE TEMP TABLE degree_gap_ci AS
        SELECT ds.degree AS sender_degree, dr.degree AS receiver_degree, count(*) AS records,
               sum(converted::INT) AS conversions, avg(converted::INT) AS ci
        FROM shc JOIN user_degree ds ON ds.user_id = shc.sender_id
                 JOIN user_degree dr ON dr.user_id = shc.receiver_id
        WHERE ds.degree BETWEEN 1 AND 9 AND dr.degree BETWEEN 1 AND 9
        GROUP BY ALL
    """,
    "close_neighbours": """
        CREATE OR REPLACE TEMP TABLE close_neighbours AS
        WITH nb AS (
            SELECT DISTINCT u, v FROM (
                SELECT sender_id AS u, receiver_id AS v FROM sh
                UNION ALL SELECT receiver_id, sender_id FROM sh) WHERE u <> v
        ), first_receipt AS (
            SELECT receiver_id AS user_id, item_id, min(ts) AS received_ts FROM sh GROUP BY ALL
        ), adopters AS (
            SELECT f.user_id, f.item_id, min(p.ts) AS adopt_ts
            FROM first_receipt f JOIN pu p USING (user_id, item_id)
            WHERE p.ts >= f.received_ts GROUP BY ALL
        ), nb_adopt AS (   -- start from adopters (the rare side), keep receiver-item pairs
            SELECT nb.u AS receiver_id, a.item_id, a.adopt_ts
            FROM adopters a JOIN nb ON nb.v = a.user_id
            WHERE (nb.u, a.item_id) IN (SELECT receiver_id, item_id FROM sh)
        ), counted AS (
            SELECT shc.rid, any_value(shc.converted) AS converted,
                   any_value(shc.item_id) AS item_id, count(n.adopt_ts) AS close
            FROM shc LEFT JOIN nb_adopt n ON n.receiver_id = shc.receiver_id
                 AND n.item_id = shc.item_id AND n.adopt_ts < shc.ts
            GROUP BY shc.rid
        )
        SELECT least(close, 5) AS close_neighbours, count(*) AS records,
               sum(converted::INT) AS conversions, avg(converted::INT) AS ci
        FROM counted GROUP BY ALL
    """,
    "two_hop": """
        CREATE OR REPLACE TEMP TABLE two_hop AS
        WITH last_receipt AS (
            SELECT s.rid, max(r.ts) AS last_ts
            FROM sh s JOIN sh r ON r.receiver_id = s.sender_id AND r.item_id = s.item_id
                               AND r.ts < s.ts
            GROUP BY s.rid
        ), f AS (
            SELECT shc.rid, shc.converted, l.last_ts,
                   CASE WHEN l.last_ts IS NULL THEN 0 ELSE least(CAST(floor(
                       epoch(shc.ts - l.last_ts) / 86400 / 7) AS INT) + 1, 4) END AS delta_weeks,
                   l.last_ts IS NOT NULL AND EXISTS (
                       SELECT 1 FROM pu WHERE pu.user_id = shc.sender_id
                       AND pu.item_id = shc.item_id AND pu.ts >= l.last_ts AND pu.ts < shc.ts
                   ) AS sender_bought
            FROM shc LEFT JOIN last_receipt l USING (rid)
        )
        SELECT delta_weeks, sender_bought, count(*) AS records,
               sum(converted::INT) AS conversions, avg(converted::INT) AS ci
        FROM f GROUP BY ALL
    """,
    "item_weekly": """
        CREATE OR REPLACE TEMP TABLE item_weekly AS
        WITH d AS (SELECT item_id, week, count(*) AS records,
                          count(DISTINCT receiver_id) AS scale FROM sh GROUP BY ALL),
             s AS (SELECT item_id, week, count(*) AS sales FROM pu GROUP BY ALL),
             active AS (SELECT item_id FROM d UNION SELECT item_id FROM s),
             weeks AS (SELECT range::INT AS week FROM range(1, (SELECT greatest(
                          (SELECT max(week) FROM sh), (SELECT max(week) FROM pu))) + 1))
        SELECT a.item_id, i.top_category, w.week, coalesce(d.records, 0) AS records,
               coalesce(d.scale, 0) AS scale, coalesce(s.sales, 0) AS sales
        FROM active a CROSS JOIN weeks w
             LEFT JOIN d ON d.item_id = a.item_id AND d.week = w.week
             LEFT JOIN s ON s.item_id = a.item_id AND s.week = w.week
             LEFT JOIN items i ON i.item_id = a.item_id
    """,
    "rising_stars": """
        CREATE OR REPLACE TEMP TABLE rising_stars AS
        WITH windows AS (SELECT range::INT AS window_start FROM range(1,
                             (SELECT max(week) FROM item_weekly) - {B} - {A} + 2)),
        per AS (
            SELECT window_start, item_id, top_category,
                   sum(CASE WHEN week BETWEEN window_start AND window_start + {B} - 1
                            THEN sales ELSE 0 END) AS sales_before,
                   sum(CASE WHEN week BETWEEN window_start + {B} AND window_start + {B} + {A} - 1
                            THEN sales ELSE 0 END) AS sales_after,
                   sum(CASE WHEN week BETWEEN window_start AND window_start + {B} - 1
                            THEN records ELSE 0 END) AS records_before
            FROM item_weekly JOIN windows
                 ON week BETWEEN window_start AND window_start + {B} + {A} - 1
            GROUP BY ALL
        ), n AS (SELECT top_category, count(*) AS n FROM items GROUP BY ALL),
        ranked AS (
            SELECT per.*, ceil(n * 3 / 1000.0) AS cutoff_before, ceil(n / 1000.0) AS cutoff_after,
                   rank() OVER (PARTITION BY window_start, top_category
                                ORDER BY sales_before DESC) AS rank_before,
                   rank() OVER (PARTITION BY window_start, top_category
                                ORDER BY sales_after DESC) AS rank_after
            FROM per LEFT JOIN n USING (top_category)
        )
        SELECT *, NOT (sales_before > 0 AND rank_before <= cutoff_before)
                  AND (sales_after > 0 AND rank_after <= cutoff_after) AS rising
        FROM ranked
    """,
    "mdsw": """
        CREATE OR REPLACE TEMP TABLE mdsw AS
        WITH d AS (SELECT item_id, week, abs(scale - lag(scale) OVER (
                       PARTITION BY item_id ORDER BY week)) AS diff FROM item_weekly)
        SELECT r.window_start, r.item_id, r.rising, max(d.diff) AS mdsw
        FROM rising_stars r JOIN d ON d.item_id = r.item_id
             AND d.week BETWEEN r.window_start + 1 AND r.window_start + {B} - 1
        GROUP BY ALL
    """,
    "hub_nodes": """
        CREATE OR REPLACE TEMP TABLE hub_nodes AS
        WITH c AS (SELECT sender_id AS user_id, count(*) AS records_sent FROM sh GROUP BY ALL),
        r AS (SELECT *, rank() OVER (ORDER BY records_sent DESC) AS rk,
                     count(*) OVER () AS n FROM c)
        SELECT user_id, records_sent FROM r WHERE rk <= ceil(n / 100.0)
    """,
    "scale_vs_sales": """
        CREATE OR REPLACE TEMP TABLE scale_vs_sales AS
        SELECT least(scale, 50) AS scale, count(*) AS item_weeks, avg(sales) AS mean_sales
        FROM item_weekly WHERE scale > 0 GROUP BY ALL
    """,
}

CHECKS = {
    # table: (sql over duckdb result, the same over the Spark table loaded into duckdb)
    "conversion_index": "SELECT count(*), sum(share_conversions), sum(browse_conversions) FROM {}",
    "degree_gap_ci": "SELECT count(*), sum(records), sum(conversions) FROM {}",
    "two_hop": "SELECT delta_weeks, sender_bought, records, conversions FROM {} ORDER BY 1, 2",
    "item_weekly": "SELECT count(*), sum(scale), sum(sales) FROM {}",
    "rising_stars": "SELECT count(*), sum(rising::INT) FROM {}",
    "mdsw": "SELECT count(*), sum(mdsw) FROM {}",
    "scale_vs_sales": "SELECT scale, item_weeks FROM {} ORDER BY 1",
    "close_neighbours": "SELECT close_neighbours, records, conversions FROM {} ORDER BY 1",
}
# Spark's table also holds per-category rows; the overall ones have a null category.
SPARK_FILTER = {"close_neighbours": "(SELECT * FROM {} WHERE top_category IS NULL)"}


def duckdb_connection(threads: int | None):
    import duckdb
    import duckdb_extension_delta

    folder = os.path.dirname(duckdb_extension_delta.__file__)
    (ext,) = glob.glob(os.path.join(folder, "extensions", "*", "delta.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    if threads:
        con.execute(f"SET threads = {threads}")
    return con


def run_duckdb(
    lake: str, threads: int | None, before: int = 4, after: int = 2
) -> tuple[float, dict[str, float], object]:
    con = duckdb_connection(threads)
    began = time.perf_counter()
    for table in ("shares", "purchases", "browses", "items"):
        con.execute(
            f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM delta_scan('{lake}/raw/{table}')"
        )
    steps = {}
    for name, sql in SQL.items():
        t0 = time.perf_counter()
        con.execute(sql.replace("{B}", str(before)).replace("{A}", str(after)))
        steps[name] = time.perf_counter() - t0
        print(f"[duckdb] {name}: {steps[name]:.2f} s", flush=True)
    return time.perf_counter() - began, steps, con


def run_spark(lake: str, run_id: str, before: int, after: int) -> tuple[float, dict]:
    """Wall time of ``jobs.observe`` as a fresh process (JVM start included) and its summary."""
    summary = os.path.join(tempfile.mkdtemp(prefix="observe-bench-"), "summary.json")
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jobs.observe", "--lake", lake, "--run-id", run_id,
         "--before-weeks", str(before), "--after-weeks", str(after), "--summary", summary],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - began
    with open(summary) as fh:
        steps = {row["table"]: row["seconds"] for row in json.load(fh)["tables"]}
    return wall, steps


def check(con, lake: str) -> int:
    mismatches = 0
    for table, query in CHECKS.items():
        mine = con.execute(query.format(table)).fetchall()
        source = f"delta_scan('{lake}/stats/{table}')"
        if table in SPARK_FILTER:
            source = SPARK_FILTER[table].format(source)
        theirs = con.execute(query.format(source)).fetchall()
        same = [tuple(round(float(v), 6) if isinstance(v, float) else v for v in r)
                for r in mine] == [tuple(round(float(v), 6) if isinstance(v, float) else v
                                         for v in r) for r in theirs]
        mismatches += not same
        print(f"[check] {table}: {'same' if same else f'DIFFERENT duckdb={mine} spark={theirs}'}")
    return mismatches


def _join(values, digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--skip-spark", action="store_true", help="reuse the last stats/*")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads")
    parser.add_argument("--run-id", default=f"bench-{int(time.time())}")
    parser.add_argument("--before-weeks", type=int, default=4)
    parser.add_argument("--after-weeks", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of Spark then DuckDB, back to back; medians are reported")
    args = parser.parse_args()
    lake = os.path.abspath(args.lake)

    rounds = []
    con = None
    for i in range(args.repeat):
        row = {"round": i + 1}
        if not args.skip_spark:
            row["load_spark"] = load()
            row["spark"], steps = run_spark(
                lake, f"{args.run_id}-{i}", args.before_weeks, args.after_weeks
            )
            # Without JVM start, origin scan, Delta commits' bookkeeping and the tests: the
            # statistics' own steps, closer to what the DuckDB SQL computes.
            row["spark_stats"] = sum(v for k, v in steps.items() if k != "tests")
            row["spark_tests"] = steps.get("tests", 0.0)
            print(f"[spark] round {i + 1}: jobs.observe {row['spark']:.1f} s (JVM start, all "
                  f"statistics, tests {row['spark_tests']:.1f} s); statistics' steps "
                  f"{row['spark_stats']:.1f} s; load {row['load_spark']}", flush=True)
        row["load_duckdb"] = load()
        row["duckdb"], _, con = run_duckdb(
            lake, args.threads, args.before_weeks, args.after_weeks
        )
        print(f"[duckdb] round {i + 1}: {row['duckdb']:.1f} s (no tests); load "
              f"{row['load_duckdb']}", flush=True)
        rounds.append(row)

    mismatches = check(con, lake)
    print("\nDuckDB leaves out: the tests, per-category close neighbours and hubs, hub counts and "
          "sales, prior degrees, 2-hop per-item mean/sd, next-week sales, scale fluctuation, "
          "and writing share_features; Spark's total includes JVM start and Delta commits.")
    duck = statistics.median(r["duckdb"] for r in rounds)
    print(f"rounds {len(rounds)}: duckdb median {duck:.1f} s "
          f"(all: {_join(r['duckdb'] for r in rounds)})")
    if not args.skip_spark:
        spark = statistics.median(r["spark"] for r in rounds)
        stats_only = statistics.median(r["spark_stats"] for r in rounds)
        ratios = [r["spark"] / r["duckdb"] for r in rounds]
        print(f"spark median {spark:.1f} s (all: {_join(r['spark'] for r in rounds)})"
              f"; statistics' steps median {stats_only:.1f} s")
        print(f"ratio spark/duckdb: {spark / duck:.2f} (medians), per round "
              f"{_join(ratios, 2)}; statistics' steps only "
              f"{stats_only / duck:.2f}")
        print("load averages (spark, duckdb) per round: "
              + "; ".join(f"{r['load_spark']}, {r['load_duckdb']}" for r in rounds))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
