"""Two writers at once on one table, many times over: nothing lost, nothing committed twice.

Each race releases two writers together (a barrier), with the same app id (one job run started
twice) or with two app ids (two runs), on a table that exists or, for the first writers, does
not yet. Whatever the timing:

* an app id has at most one commit in the table's history, and the table holds the rows of
  each committed app id exactly once (so rows = the sum over the distinct app ids committed);
* with one app id there is one commit: the other writer skips, reports that same commit, or
  fails with ``ConcurrentWriteError`` saying to re-run; with two, both commit (blind appends);
* a reader looping beside the writers (Spark and delta-rs) never fails and only ever sees each
  app id's rows whole.

Library level: ``Lake.write`` from two threads and from two processes (each its own Spark
application), ``models.lakeio.append_rows`` from two processes. Command line: two
``jobs.ingest`` processes on one table. Slow: 30 races per writer pair, a few at the CLI.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pipeline.lake import ConcurrentWriteError, Lake

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RACES = 30
ROWS = 3  # rows per write, each tagged with its app id
SMALL_SPARK = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.driver.memory": "1g",
}


def rows_of(app: str, race: int) -> list[tuple[str, int]]:
    return [(app, race * 100 + i) for i in range(ROWS)]


def races() -> list[tuple[str, str]]:
    """The app ids of the two writers of each race: even races one app id, odd races two."""
    return [
        (f"same-{race}", f"same-{race}") if race % 2 == 0 else (f"a-{race}", f"b-{race}")
        for race in range(RACES)
    ]


# -- the reader beside the race ----------------------------------------------------------------


class Readers:
    """Threads reading the table in a loop (delta-rs, and Spark when given) until stopped;
    they keep every error and every app id count that is not a whole write."""

    def __init__(self, path: str, spark=None):
        self.path, self.spark = path, spark
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.torn: list[dict] = []
        self.reads = Counter()
        readers = [self._rust] + ([self._spark] if spark is not None else [])
        self.threads = [threading.Thread(target=self._loop, args=(r,)) for r in readers]

    def _rust(self) -> list[str]:
        return DeltaTable(self.path).to_pyarrow_table(columns=["app"]).column("app").to_pylist()

    def _spark(self) -> list[str]:
        frame = self.spark.read.format("delta").load(self.path).select("app")
        return frame.toArrow().column("app").to_pylist()

    def _loop(self, read) -> None:
        while not self.stop.is_set():
            try:
                apps = Counter(read())
            except Exception as error:  # noqa: BLE001 - what the test asserts is absent
                self.errors.append(f"{read.__name__}: {error!r}")
                continue
            self.reads[read.__name__] += 1
            torn = {app: n for app, n in apps.items() if n != ROWS}
            if torn:
                self.torn.append(torn)

    def __enter__(self) -> Readers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


# -- the checks --------------------------------------------------------------------------------


def check_outcome(first: str, second: str, outcomes: list[tuple]) -> None:
    """Each writer committed, skipped (its app id was in the log) or lost with the message.
    Two writers of one app id make one commit: a writer whose write Delta skipped may still
    report that commit as its run's (``Lake.write`` looks its app id up after writing), so
    every "committed" of one app id names the same version."""
    for outcome in outcomes:
        assert outcome[0] in ("committed", "skipped", "conflict"), outcome
        if outcome[0] == "conflict":
            assert "another writer committed first" in outcome[1], outcome
            assert "re-run" in outcome[1], outcome
    versions = {o[1] for o in outcomes if o[0] == "committed"}
    if first == second:
        assert len(versions) == 1, outcomes
    else:
        assert [o[0] for o in outcomes] == ["committed", "committed"], outcomes


def check_table(path: str, readers: Readers) -> None:
    """One commit per app id; the rows of every committed app id once; readers unharmed."""
    history = DeltaTable(path).history()
    commits = Counter(c.get("userMetadata") for c in history if c["operation"] != "CREATE TABLE")
    twice = {app: n for app, n in commits.items() if n > 1}
    assert twice == {}, f"app ids committed more than once: {twice}"
    apps = Counter(DeltaTable(path).to_pyarrow_table().column("app").to_pylist())
    committed = {app for app in commits if app is not None}
    assert apps == {app: ROWS for app in committed}
    for first, second in races():
        assert first in committed or second in committed, (first, second)  # one at least
    assert readers.errors == []
    assert readers.torn == []
    assert all(n > 0 for n in readers.reads.values()), readers.reads


# -- Lake.write: threads of one application, and two applications ------------------------------


def _frame(spark, app: str, race: int):
    return spark.createDataFrame(rows_of(app, race), "app string, k long")


def _spark_write(lake: Lake, frame, app: str) -> tuple:
    try:
        result = lake.write(frame, "stats", "race", app_id=app)
    except ConcurrentWriteError as error:
        return ("conflict", str(error))
    return ("skipped",) if result.skipped else ("committed", result.version)


def test_lake_write_from_two_threads(spark, lake):
    _spark_write(lake, _frame(spark, "seed", 999), "seed")
    path = lake.path("stats", "race")
    with Readers(path, spark) as readers:
        for first, second in races():
            race = int(first.rsplit("-", 1)[1])
            gate = threading.Barrier(2)
            outcomes: list = [None, None]

            def run(i: int, app: str, frame, gate=gate, outcomes=outcomes) -> None:
                gate.wait()
                outcomes[i] = _spark_write(lake, frame, app)

            threads = [threading.Thread(target=run, args=(i, a, _frame(spark, a, race)))
                       for i, a in enumerate((first, second))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            check_outcome(first, second, outcomes)
    check_table(path, readers)


def test_lake_write_first_writers_of_a_new_table(spark, lake):
    """Two writers that both find no table: Delta lets one create it and refuses the other's
    commit (the protocol changed under it); that append is written again and commits too."""
    for first, second in races()[: RACES // 3]:
        race = int(first.rsplit("-", 1)[1])
        table = f"new_{race}"
        gate = threading.Barrier(2)
        outcomes: list = [None, None]

        def run(i: int, app: str, frame, gate=gate, outcomes=outcomes, table=table) -> None:
            gate.wait()
            try:
                result = lake.write(frame, "stats", table, app_id=app)
                outcomes[i] = ("skipped",) if result.skipped else ("committed", result.version)
            except Exception as error:  # noqa: BLE001 - the test inspects it
                outcomes[i] = ("error", repr(error))

        threads = [threading.Thread(target=run, args=(i, a, _frame(spark, a, race)))
                   for i, a in enumerate((first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check_outcome(first, second, outcomes)
        if first != second:  # one created the table, the other appended after it
            assert sorted(o[1] for o in outcomes) == [0, 1], outcomes
        apps = Counter(lake.to_arrow("stats", table).column("app").to_pylist())
        assert apps == {app: ROWS for app in {first, second}}


def _spark_writer(root: str, gate, inbox, outbox) -> None:
    """A process with its own Spark application: one write per message, after the barrier."""
    from pipeline.session import get_spark

    spark = get_spark("sharecast-race-writer", master="local[1]", conf=SMALL_SPARK)
    lake = Lake(root)
    outbox.put(("ready",))
    while (job := inbox.get()) is not None:
        app, race = job
        frame = _frame(spark, app, race)
        gate.wait()
        try:
            outbox.put(_spark_write(lake, frame, app))
        except Exception as error:  # noqa: BLE001 - reported to the test
            outbox.put(("error", repr(error)))
    spark.stop()


def _race_processes(target, root: str, timeout: float) -> list[list[tuple]]:
    """Two spawned writer processes running ``target``; every race of ``races()`` between them;
    returns each race's two outcomes."""
    context = mp.get_context("spawn")  # neither a JVM gateway nor delta-rs survives fork
    gate = context.Barrier(2)
    inboxes = [context.Queue() for _ in range(2)]
    outboxes = [context.Queue() for _ in range(2)]
    procs = [context.Process(target=target, args=(root, gate, inboxes[i], outboxes[i]))
             for i in range(2)]
    for p in procs:
        p.start()
    try:
        assert [o.get(timeout=timeout) for o in outboxes] == [("ready",)] * 2
        found = []
        for first, second in races():
            race = int(first.rsplit("-", 1)[1])
            inboxes[0].put((first, race))
            inboxes[1].put((second, race))
            found.append([o.get(timeout=timeout) for o in outboxes])
    finally:
        for inbox in inboxes:
            inbox.put(None)
        for p in procs:
            p.join(timeout=120)
            if p.is_alive():
                p.kill()
    return found


def test_lake_write_from_two_processes(spark, lake):
    _spark_write(lake, _frame(spark, "seed", 999), "seed")
    path = lake.path("stats", "race")
    with Readers(path, spark) as readers:
        found = _race_processes(_spark_writer, lake.root, timeout=600)
    for (first, second), outcomes in zip(races(), found, strict=True):
        check_outcome(first, second, outcomes)
    check_table(path, readers)


# -- lakeio.append_rows (delta-rs, the results writer) ----------------------------------------


def _arrow(app: str, race: int) -> pa.Table:
    rows = rows_of(app, race)
    return pa.table({"app": [a for a, _ in rows], "k": [k for _, k in rows]})


def _rows_writer(root: str, gate, inbox, outbox) -> None:
    from models import lakeio

    outbox.put(("ready",))
    while (job := inbox.get()) is not None:
        app, race = job
        data = _arrow(app, race)
        gate.wait()
        try:
            version = lakeio.append_rows(root, data, app)
            outbox.put(("skipped",) if version is None else ("committed", version))
        except Exception as error:  # noqa: BLE001 - reported to the test
            outbox.put(("error", repr(error)))


def test_append_rows_from_two_processes(spark, tmp_path):
    from models import lakeio

    path = str(tmp_path / "results")
    lakeio.append_rows(path, _arrow("seed", 999), "seed")
    with Readers(path, spark) as readers:
        found = _race_processes(_rows_writer, path, timeout=120)
    for (first, second), outcomes in zip(races(), found, strict=True):
        check_outcome(first, second, outcomes)
    check_table(path, readers)


# -- two jobs.ingest at the command line -------------------------------------------------------

# Three good records and one rejected (sender == receiver) per file; ``first`` sets the ids.
def _shares_csv(path: Path, first: int) -> Path:
    lines = ["sender_id,receiver_id,item_id,ts"]
    lines += [f"{first + i},{first + i + 1},10,2026-01-0{i + 1} 10:00:00" for i in range(3)]
    lines.append(f"{first},{first},10,2026-01-05 10:00:00")
    path.write_text("\n".join(lines) + "\n")
    return path


def _ingest(lake: Path, source: Path, run_id: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jobs.ingest", "--lake", str(lake), "--table", "shares",
           "--input", str(source), "--format", "csv", "--run-id", run_id, "--master", "local[1]"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("SHARECAST_FAILPOINT", None)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _together(*procs: subprocess.Popen) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=900) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def _ingest_batches(spark, lake: Path) -> dict[str, tuple[int, int, int]]:
    """batch id -> (raw rows, quarantine rows, ledger rows)."""
    lake_ = Lake(lake)

    def per_batch(layer: str, table: str) -> Counter:
        rows = lake_.to_arrow(layer, table).column("batch_id").to_pylist()
        return Counter(rows)

    raw, quarantine = per_batch("raw", "shares"), per_batch("quarantine", "shares")
    ledger = per_batch("ledger", "ingest")
    return {b: (raw[b], quarantine[b], ledger[b]) for b in set(raw) | set(quarantine) | set(ledger)}


@pytest.mark.parametrize("existing", [False, True], ids=["new-table", "existing-table"])
def test_two_ingests_at_once(spark, tmp_path, existing):
    """Two inputs under two run ids, then one input under one run id twice: both processes
    exit 0, each batch's 3 accepted rows, 1 rejected row and 1 ledger row are in the lake once,
    and every batch is whole."""
    from pipeline import batches

    lake = tmp_path / "lake"
    if existing:
        seed = _shares_csv(tmp_path / "seed.csv", 100)
        rc, _, err = _together(_ingest(lake, seed, "seed"))[0]
        assert rc == 0, err[-3000:]
    a = _shares_csv(tmp_path / "a.csv", 1)
    b = _shares_csv(tmp_path / "b.csv", 11)
    for tries in range(2):
        ran = _together(_ingest(lake, a, f"a{tries}"), _ingest(lake, b, f"b{tries}"))
        ran += _together(_ingest(lake, a, f"same{tries}"), _ingest(lake, a, f"same{tries}"))
        for rc, out, err in ran:  # blind appends that lose to a table's creation write again
            assert rc == 0, err[-3000:]
            summary = json.loads(out)
            assert (summary["read"], summary["accepted"], summary["quarantined"]) == (4, 3, 1)
        found = _ingest_batches(spark, lake)
        for batch in (f"a{tries}", f"b{tries}", f"same{tries}"):
            assert found.get(batch) == (3, 1, 1), (batch, found)
    states = {s.batch_id: s.state for s in batches.status(spark, Lake(lake))}
    assert set(states.values()) == {"whole"}, states
