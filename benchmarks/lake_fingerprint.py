"""Print a content hash of every Delta table of a lake, or what differs from a second lake.

    python benchmarks/lake_fingerprint.py LAKE [--drop run_id,created_at] [--against LAKE2]

Rows are read with ``deltalake`` (no JVM); the run-dependent columns (``--drop``, and the same
keys and every ``*seconds`` key inside a manifest's JSON) are left out, floats are taken to 9
significant digits and the rows sorted, so the hash depends on the table's content only, not on
file layout, partitioning or commit history (``pipeline/fingerprint.py``). With ``--against``
it prints, per table that differs, the first difference, comparing floats to 1e-9 relative.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.fingerprint import RUN_COLUMNS, fingerprint, lake_differences  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("--drop", default=",".join(sorted(RUN_COLUMNS)),
                        help="columns left out (default: the run's ids, clocks and timings)")
    parser.add_argument("--against", default=None, help="a second lake to compare with")
    args = parser.parse_args()
    drop = frozenset(c for c in args.drop.split(",") if c)
    if args.against:
        found = lake_differences(args.lake, args.against, drop)
        print(json.dumps(found, indent=1, sort_keys=True))
        sys.exit(1 if found else 0)
    print(json.dumps(fingerprint(args.lake, drop), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
