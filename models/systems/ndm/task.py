"""The NDM task: cascades as user sequences, scored by Monte Carlo diffusion identification.

Shards: ``shards/ndm/<dataset>`` (``jobs.import_cascades`` or ``jobs.build_shards --task ndm``),
one row per cascade (cascade_id, split, users, times), and ``shards/ndm/<dataset>_users`` (the
dense id map; its size is |U|). Vocabulary: users 0..|U|-1, Terminate = |U|, padding = |U|+1.

Evaluation (NDM paper Sec. 5.3 and 5.5), dict in, dict out:

* Diffusion identification. For a cascade c = (u_0, u_1, ...) only u_0 is given; the ground truth
  is G^c = {u_1 .. u_|G^c|}. ``sims`` Monte Carlo simulations (1000) sample one user at a time
  from the model's next-user distribution (infected users masked) until Terminate or |G^c| new
  users. P_u^c = fraction of simulations that infect u. Then

      pre_c = sum_{u in G^c} P_u^c / sum_u P_u^c,   rec_c = sum_{u in G^c} P_u^c / |G^c|
      f_c = 2 pre_c rec_c / (pre_c + rec_c),         Macro-F1 = mean_c f_c
      Micro-F1: the same with numerators and denominators summed over cascades first.

  ``macro_f1`` / ``micro_f1``. The early-stage variant (Table 3) takes G^c = the first five
  infected users and counts only the first min(5, |G^c|) users of each simulation
  (``macro_f1_early`` / ``micro_f1_early``); these are the first steps of the same simulations,
  since capping a simulation does not change its earlier steps. Cascades with no user after u_0
  are left out of F1 (``cascades_f1`` counts the rest).
* Cascade size (Sec. 5.5): given the first ``given`` (5) users, simulate (``size_sims``) until
  Terminate or ``size_cap`` users in all; the predicted size is the mean simulated size;
  ``msle`` = mean_c (ln|c| - ln pred_c)^2.
* Next-user ranking, teacher forced: at every position the true next user (not Terminate) is
  ranked among all users and Terminate, infected users excluded; ``hits@k`` and ``map@k`` for
  k in ``ks`` (10, 50, 100); map@k is the reciprocal rank when it is within k, else 0. Tied
  scores count half (``tie_aware_rank``).

Every cascade's simulations use their own generator seeded by (``seed``, cascade_id), so a
split scored in shards over ranks gives the same numbers as in one process. The val split is
simulated with ``val_sims`` (100) and without the size simulations (``val_size_sims``, 0) to
keep per-epoch model selection cheap.

Models plug in through ``loss`` / ``predict`` (log-probabilities (B, L, V)) for training and
ranking, and through the ``Simulable`` protocol (``begin`` / ``extend`` / ``reorder``,
``models.systems.ndm.simulation``) for simulation; a model that lacks it is refused with a
``TypeError`` naming what is missing.

Training recipe (``NdmTask.recipe``: what ``models.train --task ndm`` uses for each setting a
run leaves unset): batch 32, Adam at 5e-3, validation every epoch on ``val_sims`` (100)
simulations per val cascade, the best epoch and early stopping read from the moving average of
val Macro-F1 (``--smoothing 0.6``), the rate halved after every 3 epochs without a gain
(``--plateau 3``), a stop after 10 (``--patience 10``) or at 60 epochs. One recipe covers a few
hundred cascades (Irvine: 12 steps an epoch, still climbing after 30 epochs at 5e-3) and many
thousand (Memetracker: 211 steps an epoch, best near 1e-3): the high rate makes small data quick,
the plateaus give large data its fine rate, and the average keeps one noisy validation of a
few dozen cascades from stopping a climbing run or choosing a lucky epoch.

Options (``--opt key=value``): the fields of ``NdmTask.Options``, each documented there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from contracts import check_schema
from contracts import ndm as contract
from models import lakeio
from models.base import OptionError, ShardModel, Task, register_task
from models.systems.ndm.simulation import require_simulable, simulate
from models.systems.ndm.social import read_social_edges

#: The cascade columns this reader uses (a projection of ``contracts.ndm.CASCADES``).
READ = pa.schema([contract.CASCADES.field(name) for name in ("cascade_id", "split", "users")])


class CascadeSplit(list):
    """The examples of one split; remembers which split it is."""

    split: str = ""


def f1_scores(
    p_in_truth: Sequence[float], p_total: Sequence[float], truth_sizes: Sequence[int]
) -> dict[str, float]:
    """Macro- and Micro-F1 of Sec. 5.3 from per-cascade sums.

    Args:
        p_in_truth: sum_{u in G^c} P_u^c per cascade.
        p_total: sum_u P_u^c per cascade.
        truth_sizes: |G^c| per cascade (all > 0).
    """
    sums = _f1_sums(p_in_truth, p_total, truth_sizes)
    return _f1_from_sums(sums["f_sum"], sums["n"], sums["hit"], sums["total"], sums["truth"])


def _f1_sums(p_in_truth, p_total, truth_sizes) -> dict[str, float]:
    hit = torch.as_tensor(p_in_truth, dtype=torch.float64)
    total = torch.as_tensor(p_total, dtype=torch.float64)
    truth = torch.as_tensor(truth_sizes, dtype=torch.float64)
    pre = torch.where(total > 0, hit / total.clamp_min(1e-300), torch.zeros_like(hit))
    rec = hit / truth
    f = torch.where(pre + rec > 0, 2 * pre * rec / (pre + rec).clamp_min(1e-300), 0.0)
    return {
        "f_sum": f.sum().item(),
        "n": float(len(hit)),
        "hit": hit.sum().item(),
        "total": total.sum().item(),
        "truth": truth.sum().item(),
    }


def _f1_from_sums(f_sum, n, hit, total, truth) -> dict[str, float]:
    macro = f_sum / n if n else 0.0
    pre = hit / total if total > 0 else 0.0
    rec = hit / truth if truth > 0 else 0.0
    micro = 2 * pre * rec / (pre + rec) if pre + rec > 0 else 0.0
    return {"macro_f1": macro, "micro_f1": micro}


def tie_aware_rank(scores: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """0-based rank of ``true`` in each row of ``scores``, ties broken at random in expectation:
    (users scored higher) + (other users scored the same) / 2. Counting only the higher ones
    would let a model that scores everyone alike rank every target first."""
    target = scores.gather(1, true[:, None])
    higher = (scores > target).sum(1).double()
    same = (scores == target).sum(1).double() - 1
    return higher + same / 2


@register_task("ndm")
class NdmTask(Task):
    """Cascades of ``shards/ndm/<dataset>`` (default ``world``), scored as the module says."""

    primary_metric = "macro_f1"
    #: One schedule for any cascade data (see the module docstring, "Training recipe").
    recipe = {"batch_size": 32, "lr": 5e-3, "epochs": 60, "patience": 10, "smoothing": 0.6,
              "plateau": 3}

    @dataclasses.dataclass
    class Options:
        #: Monte Carlo simulations per cascade of the test (and train) split (Sec. 5.3)
        sims: int = 1000
        #: simulations per cascade of the val split (cheap per-epoch model selection)
        val_sims: int = 100
        #: cascade-size simulations per test cascade (Sec. 5.5); 0 leaves out ``msle``; none:
        #: 100 when ``terminate_target`` is on, else 0 (a model that never learned to stop
        #: grows every simulated cascade to the cap, so its sizes mean nothing)
        size_sims: int | None = None
        #: cascade-size simulations per val cascade; 0 leaves out ``msle``
        val_size_sims: int = 0
        #: most users a size simulation grows a cascade to; none: the longest training cascade
        size_cap: int | None = None
        #: users given to the size simulations
        given: int = 5
        #: users of the early-stage F1 (Table 3): the first ``early`` steps and true users
        early: int = 5
        #: the k of ``hits@k`` and ``map@k`` (comma-separated on the command line)
        ks: list[int] = dataclasses.field(default_factory=lambda: [10, 50, 100])
        #: seed of the simulations; each cascade's generator is seeded by (seed, cascade_id)
        seed: int = 0
        #: cascades per teacher-forced ranking batch
        eval_batch_size: int = 64
        #: score only the first N cascades of a split (quick checks); 0 scores all
        max_cascades: int = 0
        #: batches keep the first N users of longer cascades (bounds the (B, L, V) score
        #: tensors on generated worlds with very long cascades); 0 keeps all
        max_len: int = 0
        #: simulate from softmax(scores / T); 1 is the paper's protocol; the ``ndm-sharp``
        #: variant picks T < 1 on val (see README)
        temperature: float = 1.0
        #: added to the Terminate score before the temperature; 0 is the paper's protocol;
        #: below 0 simulations run longer (the ``ndm-fill`` variant picks it on val)
        terminate_bias: float = 0.0
        #: training: on, Terminate is the target after each cascade's last user, as Sec. 4.1
        #: and Eq. (8) describe (needed to predict cascade sizes, ``msle``); off (default)
        #: leaves that position out of the loss, as the authors' released code does: Terminate
        #: stays in every softmax but is never a target, so simulations seldom stop before
        #: |G^c|. Off reproduces the paper's F1 figures (see README)
        terminate_target: bool = False

        def __post_init__(self) -> None:
            if self.size_sims is None:
                self.size_sims = 100 if self.terminate_target else 0
            if not self.temperature > 0:
                raise OptionError(f"task 'ndm' option temperature must be > 0, "
                                  f"got {self.temperature}")
            if not math.isfinite(self.terminate_bias):
                raise OptionError(f"task 'ndm' option terminate_bias must be finite, "
                                  f"got {self.terminate_bias}")
            if self.eval_batch_size < 1:
                raise OptionError(f"task 'ndm' option eval_batch_size must be >= 1, "
                                  f"got {self.eval_batch_size}")
            if any(k < 1 for k in self.ks):
                raise OptionError(f"task 'ndm' option ks must hold k >= 1, got {self.ks}")

    def __init__(self, lake: str, dataset: str | None = None, **options: Any):
        super().__init__(lake, dataset or "world", **options)
        self._rows: dict[str, list[dict[str, Any]]] | None = None
        self._n_users: int | None = None

    # -- data ----------------------------------------------------------------------------------

    def _table(self, name: Callable[[str], str] = contract.cascades_table) -> str:
        return f"{self.lake}/shards/{name(self.dataset)}"

    def _load(self) -> dict[str, list[dict[str, Any]]]:
        if self._rows is None:
            check_schema(self._table(), lakeio.dataset(self._table()).schema, READ)
            table = lakeio.read_table(self._table(), columns=list(READ.names))
            rows: dict[str, list[dict[str, Any]]] = {}
            for row in sorted(table.to_pylist(), key=lambda r: r["cascade_id"]):
                rows.setdefault(row["split"], []).append(row)
            self._rows = rows
        return self._rows

    @property
    def n_users(self) -> int:
        if self._n_users is None:
            users = lakeio.read_table(self._table(contract.users_table), columns=["user_id"])
            ids = users.column("user_id").to_pylist()
            self._n_users = (max(ids) + 1) if ids else 0
        return self._n_users

    def meta(self) -> dict[str, Any]:
        train = self._load().get("train", [])
        max_len = max((len(r["users"]) for r in train), default=1)
        return {
            "n_users": self.n_users,
            "vocab": self.n_users + 1,
            "terminate": self.n_users,
            "pad": self.n_users + 1,
            "max_len": max_len,
            # NDM+SN (``ndm_sn``): the table's path always, the graph only when it exists
            "social_table": self._table(contract.social_table),
            **({"social": self.social_edges} if self._has_social() else {}),
        }

    def load_split(self, split: str) -> CascadeSplit:
        out = CascadeSplit(
            {"cascade_id": int(r["cascade_id"]), "users": torch.tensor(r["users"])}
            for r in self._load().get(split, [])
        )
        if self.options.max_cascades:
            del out[self.options.max_cascades:]
        out.split = split
        return out

    def example_length(self, example: dict[str, Any]) -> int:
        n, cut = len(example["users"]), self.options.max_len
        return min(n, cut) if cut else n

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """Users padded with |U|+1; targets = next user, Terminate after the last (-100 there
        when ``terminate_target`` is off), -100 pad."""
        pad, terminate = self.n_users + 1, self.n_users
        cut = self.options.max_len
        length = max(len(e["users"]) for e in examples)
        if cut:
            length = min(length, cut)
        users = torch.full((len(examples), length), pad, dtype=torch.long)
        targets = torch.full((len(examples), length), -100, dtype=torch.long)
        for i, e in enumerate(examples):
            seq = e["users"]
            if cut and len(seq) > cut:
                # Cut long cascades: the last kept position predicts the next real user.
                users[i, :cut] = seq[:cut]
                targets[i, :cut] = seq[1: cut + 1]
                continue
            users[i, : len(seq)] = seq
            targets[i, : len(seq) - 1] = seq[1:]
            if self.options.terminate_target:
                targets[i, len(seq) - 1] = terminate
        return {
            "users": users,
            "targets": targets,
            "lengths": torch.tensor([len(e["users"]) for e in examples]),
            "cascade_id": torch.tensor([e["cascade_id"] for e in examples]),
        }

    # -- evaluation ----------------------------------------------------------------------------

    def evaluate(
        self, model: ShardModel, examples: Sequence[Any], device: torch.device
    ) -> dict[str, float]:
        return self.metrics_from_sums(self.metric_sums(model, examples, device))

    def metric_sums(
        self, model: ShardModel, examples: Sequence[Any], device: torch.device
    ) -> dict[str, float]:
        """Additive sums of every metric over ``examples`` (a shard of a split).

        Raises:
            TypeError: ``model`` does not implement the simulation protocol (``Simulable``).
        """
        require_simulable(model)
        o = self.options
        was_training = model.training
        model.eval()
        split = getattr(examples, "split", "")
        sims = o.val_sims if split == "val" else o.sims
        size_sims = o.val_size_sims if split == "val" else o.size_sims
        vocab = self.n_users + 1
        cap = o.size_cap if o.size_cap is not None else self.meta()["max_len"]
        sums: dict[str, float] = {"cascades": float(len(examples)), "size_n": 0.0, "msle": 0.0}
        full = {"hit": [], "total": [], "truth": []}
        early = {"hit": [], "total": [], "truth": []}
        with torch.no_grad():
            for e in examples:
                users = e["users"].to(device)
                gen = torch.Generator(device=device).manual_seed(
                    (o.seed * 1_000_003 + int(e["cascade_id"])) % (2**63)
                )
                truth = users[1:]
                if truth.numel() > 0:
                    out = simulate(model, users[:1], sims, truth.numel(), vocab, gen, o.early,
                                   o.temperature, o.terminate_bias)
                    p = out["counts"] / sims  # P_u^c
                    p_early = out["early_counts"] / sims
                    full["hit"].append(p[truth].sum().item())
                    full["total"].append(p.sum().item())
                    full["truth"].append(truth.numel())
                    first = truth[: o.early]
                    early["hit"].append(p_early[first].sum().item())
                    early["total"].append(p_early.sum().item())
                    early["truth"].append(first.numel())
                given = users[: o.given]
                if size_sims > 0:
                    room = max(cap - given.numel(), 0)
                    out = simulate(model, given, size_sims, room, vocab, gen,
                                   temperature=o.temperature, terminate_bias=o.terminate_bias)
                    pred = given.numel() + out["sizes"].double().mean().item()
                    true = float(users.numel())
                    sums["msle"] += (math.log(true) - math.log(pred)) ** 2
                    sums["size_n"] += 1
            for name, parts in (("", full), ("early_", early)):
                if parts["truth"]:
                    part = _f1_sums(parts["hit"], parts["total"], parts["truth"])
                    sums.update({f"{name}{key}": value for key, value in part.items()})
                else:
                    for key in ("f_sum", "n", "hit", "total", "truth"):
                        sums[f"{name}{key}"] = 0.0
            sums.update(self._ranking_sums(model, examples, device))
        model.train(was_training)
        return sums

    def _ranking_sums(
        self, model: ShardModel, examples: Sequence[Any], device: torch.device
    ) -> dict[str, float]:
        ks, size = self.options.ks, self.options.eval_batch_size
        sums = {"rank_n": 0.0, **{f"hits@{k}": 0.0 for k in ks}}
        sums.update({f"map@{k}": 0.0 for k in ks})
        terminate = self.n_users
        for start in range(0, len(examples), size):
            batch = self.collate(list(examples[start: start + size]))
            batch = {k: v.to(device) for k, v in batch.items()}
            logp = model.predict(batch)  # (B, L, V), infected at -inf
            targets = batch["targets"]
            valid = (targets >= 0) & (targets != terminate)
            if not bool(valid.any()):
                continue
            scores = logp[valid]  # (N, V)
            true = targets[valid]
            rank = tie_aware_rank(scores, true)
            sums["rank_n"] += float(true.numel())
            for k in ks:
                inside = rank < k
                sums[f"hits@{k}"] += inside.double().sum().item()
                sums[f"map@{k}"] += torch.where(inside, 1.0 / (rank + 1).double(), 0.0).sum().item()
        return sums

    def metrics_from_sums(self, sums: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        full = _f1_from_sums(sums["f_sum"], sums["n"], sums["hit"], sums["total"], sums["truth"])
        early = _f1_from_sums(
            sums["early_f_sum"], sums["early_n"], sums["early_hit"], sums["early_total"],
            sums["early_truth"],
        )
        out.update(full)
        out.update({f"{k}_early": v for k, v in early.items()})
        if sums.get("size_n"):
            out["msle"] = sums["msle"] / sums["size_n"]
        n = sums.get("rank_n", 0.0)
        for k in self.options.ks:
            out[f"hits@{k}"] = sums[f"hits@{k}"] / n if n else 0.0
            out[f"map@{k}"] = sums[f"map@{k}"] / n if n else 0.0
        out["cascades"] = sums["cascades"]
        out["cascades_f1"] = sums["n"]
        return out

    # -- the social graph of NDM+SN ------------------------------------------------------------

    def _has_social(self) -> bool:
        """Whether ``shards/ndm/<dataset>_social`` exists (checked once)."""
        if not hasattr(self, "_social_exists"):
            self._social_exists = lakeio.exists(self._table(contract.social_table))
        return self._social_exists

    def social_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(src, dst, weight) of ``shards/ndm/<dataset>_social`` sorted by (src, dst), or None
        when the dataset has none (``models.systems.ndm.social.read_social_edges``)."""
        if not self._has_social():
            return None
        return read_social_edges(self._table(contract.social_table), self.n_users)
