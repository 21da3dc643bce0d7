"""Print a content hash of every Delta table of a lake, to check that two builds agree.

    python benchmarks/lake_fingerprint.py LAKE [--drop run_id,created_at]

Rows are read with ``deltalake`` (no JVM), the named run-dependent columns dropped, every value
turned into text and the rows sorted, so the hash depends on the table's content only, not on
file layout, partitioning or commit history. Two lakes built from the same seed by two versions
of the code should print the same lines, but for tables that record timings or run ids.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

from deltalake import DeltaTable

DEFAULT_DROP = "run_id,created_at"


def fingerprint(root: str, drop: set[str]) -> dict[str, str]:
    out = {}
    for layer in sorted(os.listdir(root)):
        layer_path = os.path.join(root, layer)
        if not os.path.isdir(layer_path) or layer.startswith("_"):
            continue
        for path, dirs, _ in sorted(os.walk(layer_path)):
            if "_delta_log" not in dirs:
                continue
            dirs[:] = []
            table = DeltaTable(path).to_pyarrow_table()
            columns = [c for c in table.column_names if c not in drop]
            frame = table.select(columns).to_pandas().astype(str)
            if len(frame):
                frame = frame.sort_values(columns).reset_index(drop=True)
            digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()[:16]
            out[os.path.relpath(path, root)] = f"{len(frame)} rows {digest}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake")
    parser.add_argument("--drop", default=DEFAULT_DROP, help="columns left out of the hash")
    args = parser.parse_args()
    print(json.dumps(fingerprint(args.lake, set(args.drop.split(","))), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
