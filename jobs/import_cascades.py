"""Import a cascade dataset (train + test text files) into ``shards/ndm/<name>``.

    python -m jobs.import_cascades --lake LAKE --name irvine \
        --train ../shared/data/cascades/irvine/cascade.txt \
        --test ../shared/data/cascades/irvine/cascadetest.txt [--val-fraction 0.1 --seed 0]
    spark-submit --properties-file spark-defaults.conf jobs/import_cascades.py --lake LAKE ...

Writes ``shards/ndm/<name>`` (one row per cascade), ``shards/ndm/<name>_users`` (dense id ->
user name), ``shards/ndm/<name>_manifest`` (one row; ``json`` holds counts per split, n_users,
per-file reconciliation) and ``quarantine/cascades_<name>`` (rejected lines with reasons). The
run id (default: a hash of the files and options) makes a re-run commit nothing twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if not __package__:
    # Run as a file (spark-submit jobs/<name>.py): the repository root takes this folder's
    # place on the path, so its packages import and jobs/pipeline.py cannot hide `pipeline`.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))

from contracts.runs import files_fingerprint, run_digest  # noqa: E402
from pipeline import logs  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--name", required=True, help="dataset name: shards/ndm/<name>")
    parser.add_argument("--train", required=True, help="training cascades (one per line)")
    parser.add_argument("--test", required=True, help="test cascades (one per line)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-id", default=None, help="idempotency key (default: derived)")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-defaults)")
    logs.add_argument(parser)
    return parser.parse_args(argv)


def default_run_id(args: argparse.Namespace) -> str:
    files = files_fingerprint([Path(args.train), Path(args.test)])
    return run_digest({"files": files, "name": args.name, "val_fraction": args.val_fraction,
                   "seed": args.seed})


def run(spark, lake, args: argparse.Namespace) -> dict:
    from pipeline.systems.ndm.cascades import import_to_lake

    return import_to_lake(
        spark, lake, args.name, args.train, args.test,
        run_id=args.run_id or default_run_id(args), val_fraction=args.val_fraction,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level)
    from pipeline.lake import InvalidNameError, Lake, check_name
    from pipeline.session import get_spark

    try:
        check_name(args.name, "--name")  # it becomes folders: refused before Spark starts
    except InvalidNameError as err:
        print(f"import_cascades: error: {err}", file=sys.stderr)
        return 2

    spark = get_spark(f"sharecast-import-cascades-{args.name}", master=args.master)
    info = run(spark, Lake(args.lake), args)
    print(json.dumps(info, indent=2, default=str))
    return 0


if __name__ == "__main__":
    from jobs import run as run_job

    sys.exit(run_job("import_cascades", main))
