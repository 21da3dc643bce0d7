"""Build the static HTML report of the observational statistics (``stats/*``).

    python -m jobs.report --lake LAKE --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--out", required=True, help="output folder for index.html + PNGs")
    args = parser.parse_args(argv)
    from pipeline.lake import Lake
    from pipeline.report import build_report

    path = build_report(Lake(args.lake), args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
