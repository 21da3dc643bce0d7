"""What the diffusion-network baselines of the NDM task share (NetRate, InfoPath, Embedded IC).

These models learn one transmission parameter per co-occurrence link and are simulated by their
own generative process (NDM paper Sec. 5.3: "simulate the infection process according to the
learned pairwise diffusion probability"), not by a softmax over a learned state:

* ``Links``: the co-occurrence links u -> v, u before v in some training cascade (the paper's
  Table 1 "links": with no social graph, every pair seen in a cascade may transmit), sorted by
  (u, v) with a row index, so a user's out-links are one slice.
* ``cascade_times``: each training cascade's infection times, from the examples when they carry
  ``times``, else from the task's cascade table (the task's readers keep only the users).
* ``normalise_times``: times relative to the cascade's first infection, in units of the longest
  training cascade's duration, ties broken by a small gap so that every infection has a strictly
  earlier possible parent (the rates of a pair always infected at the same instant would
  otherwise grow without bound).
* ``DiffusionModel``: a ``NextUserModel`` fitted once (``trainable = False``) whose buffers take
  their sizes from the fit (and from a checkpoint on load). It draws random numbers while being
  simulated (a clock, coin flips), so it asks ``simulate`` for its generator
  (``draws_in_simulation``) and keeps it in the simulation state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from contracts import ndm as contract
from models import lakeio
from models.systems.ndm.cascade import NextUserModel

#: Gap put between tied infection times, in units of the longest training cascade.
TIE_GAP = 1e-6


class Links:
    """Directed co-occurrence links of ``n_users`` users, sorted by (src, dst).

    Args:
        src, dst: (E,) link ends, sorted by ``src * n_users + dst``, no duplicates.
        n_users: |U|.
    """

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, n_users: int):
        self.src, self.dst, self.n_users = src.long(), dst.long(), int(n_users)
        self.keys = self.src * self.n_users + self.dst  # (E,) sorted
        # rowptr[u] .. rowptr[u + 1] are u's out-links; rows past |U| (Terminate, padding) are
        # empty.
        bounds = torch.arange(self.n_users + 3, dtype=torch.long) * self.n_users
        self.rowptr = torch.searchsorted(self.keys, bounds.to(self.keys.device))

    @classmethod
    def from_cascades(cls, cascades: Sequence[torch.Tensor], n_users: int) -> Links:
        """Every (u_j, u_i) with j < i in some cascade of ``cascades`` (each (n,) user ids)."""
        keys = [_forward_pairs(users, n_users) for users in cascades]
        unique = torch.unique(torch.cat(keys)) if keys else torch.zeros(0, dtype=torch.long)
        return cls(unique // n_users, unique % n_users, n_users)

    def __len__(self) -> int:
        return int(self.keys.numel())

    def lookup(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Link ids of the pairs (src, dst); -1 where there is no such link."""
        query = src.long() * self.n_users + dst.long()
        pos = torch.searchsorted(self.keys, query).clamp_(max=max(len(self) - 1, 0))
        found = (self.keys[pos] == query) if len(self) else torch.zeros_like(query, dtype=bool)
        return torch.where(found, pos, torch.full_like(pos, -1))

    def out_links(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The out-links of ``users`` (N,): (row, link) pairs, row indexing ``users``. Ids
        past |U| (Terminate, padding) have none."""
        users = users.long().clamp(0, self.n_users)
        start = self.rowptr[users]
        degree = self.rowptr[users + 1] - start  # (N,)
        row = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), degree)
        first = torch.cumsum(degree, 0) - degree  # where each row's links start in the output
        offset = torch.arange(row.numel(), device=users.device) - first[row]
        return row, start[row] + offset


def _forward_pairs(users: torch.Tensor, n_users: int) -> torch.Tensor:
    """Keys u_j * |U| + u_i of every j < i in one cascade."""
    j, i = torch.triu_indices(users.numel(), users.numel(), 1)
    return users[j].long() * n_users + users[i].long()


def cascade_times(examples: Sequence[dict[str, Any]], task: Any) -> list[torch.Tensor]:
    """Infection times of each example: its ``times`` when every example has them, else the
    ``times`` column of ``task``'s cascade table, matched by ``cascade_id``.

    Raises:
        ValueError: an example whose cascade is not in the table, or whose times do not match
            its users in number.
    """
    if all("times" in e for e in examples):
        out = [torch.as_tensor(e["times"], dtype=torch.float64) for e in examples]
    else:
        if task is None:
            raise ValueError("the examples carry no 'times' and no task was given to read them")
        table = f"{task.lake}/shards/{contract.cascades_table(task.dataset)}"
        rows = lakeio.read_table(table, columns=["cascade_id", "times"]).to_pydict()
        by_id = dict(zip(rows["cascade_id"], rows["times"], strict=True))
        missing = [int(e["cascade_id"]) for e in examples if int(e["cascade_id"]) not in by_id]
        if missing:
            raise ValueError(f"{table}: no cascade_id {missing[:5]} (of {len(missing)} missing)")
        out = [torch.tensor(by_id[int(e["cascade_id"])], dtype=torch.float64) for e in examples]
    for e, times in zip(examples, out, strict=True):
        if times.numel() != e["users"].numel():
            raise ValueError(f"cascade {e.get('cascade_id')}: {times.numel()} times for "
                             f"{e['users'].numel()} users")
    return out


def normalise_times(
    times: Sequence[torch.Tensor], scale: float | None = None
) -> tuple[list[torch.Tensor], float]:
    """Times relative to each cascade's first infection, divided by ``scale`` (default: the
    longest duration among ``times``; 1 when every cascade is instantaneous), each tie moved
    ``TIE_GAP`` after the infection before it. Returns the times and the scale."""
    relative = [t.double() - t[0].double() for t in times if t.numel()]
    if scale is None:
        scale = max((float(t[-1]) for t in relative), default=0.0) or 1.0
    out = []
    for t in times:
        if not t.numel():
            out.append(t.double())
            continue
        steps = torch.arange(t.numel(), dtype=torch.float64) * TIE_GAP
        rel = (t.double() - t[0].double()) / scale
        out.append(torch.cummax(rel - steps, 0).values + steps)  # strictly increasing
    return out, float(scale)


class DiffusionModel(NextUserModel):
    """Base of the diffusion-network baselines: fitted once; buffers listed in
    ``fitted_buffers`` take their shapes from the fit or from the state dict being loaded; the
    simulation hands ``begin`` its generator (``draws_in_simulation``)."""

    trainable = False
    draws_in_simulation = True
    fitted_buffers: tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in self.fitted_buffers:
            value = state_dict.get(prefix + name)
            if value is not None and name in self._buffers:
                current = self._buffers[name]
                self._buffers[name] = torch.empty_like(value, device=current.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def links(self) -> Links:
        """The fitted links (buffers ``link_src`` / ``link_dst``), cached per fit."""
        cached = getattr(self, "_links", None)
        if cached is None or cached.src.data_ptr() != self.link_src.data_ptr():
            cached = Links(self.link_src, self.link_dst, self.n_users)
            self._links = cached
        return cached
