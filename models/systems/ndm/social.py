"""The social graph NDM+SN reads: ``shards/ndm/<dataset>_social`` (``contracts.ndm.SOCIAL``),
the training period's share graph of a generated world in the dataset's dense user ids."""

from __future__ import annotations

import numpy as np

from contracts import check_schema
from contracts import ndm as contract
from models import lakeio


def read_social_edges(path: str, n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, weight) int64 arrays of the table at ``path``, sorted by (src, dst).

    Raises:
        ValueError: an id outside the users table 0..n_users-1, naming the table and edge.
    """
    check_schema(path, lakeio.dataset(path).schema, contract.SOCIAL)
    table = lakeio.read_table(path, columns=list(contract.SOCIAL.names))
    table = table.sort_by([("src", "ascending"), ("dst", "ascending")])
    src, dst, weight = (table.column(c).to_numpy().astype(np.int64)
                        for c in contract.SOCIAL.names)
    bad = (src < 0) | (src >= n_users) | (dst < 0) | (dst >= n_users)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: edge ({src[i]}, {dst[i]}) is outside the users "
                         f"table's ids 0..{n_users - 1}")
    return src, dst, weight
