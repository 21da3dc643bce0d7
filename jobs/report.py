"""Build the static HTML report of the statistics (``stats/*``) and model results (``results/*``).

    python -m jobs.report --lake LAKE --out DIR
    spark-submit --properties-file spark-defaults.conf jobs/report.py --lake LAKE --out DIR

It reads only small tables (with delta-rs where no Spark session runs) and writes
``DIR/index.html`` with one PNG per figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:
    # Run as a file (spark-submit jobs/<name>.py): the repository root takes this folder's
    # place on the path, so its packages import and jobs/pipeline.py cannot hide `pipeline`.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--out", required=True, help="output folder for index.html + PNGs")
    from pipeline import logs

    logs.add_argument(parser)
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    from pipeline.lake import Lake
    from pipeline.report import build_report

    path = build_report(Lake(args.lake), args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
