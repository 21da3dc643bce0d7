r"""DIPN: the Deep Intent Prediction Network over swipe, tap and browse sequences.

Paper: "Buying or Browsing?: Predicting Real-time Purchasing Intent using Attention-based Deep
Network with Multiple Behavior" (Guo et al., KDD 2019), Sec. 4. The extracted text lost parts
of the equations; this is our reading of them, as the code implements it:

* **Embedding** (Sec. 4.1): every feature id has its own table (vocabulary
  ``contracts.dipn.VOCAB``, size ``EMBEDDING``, the paper's Table 3); a group's embeddings
  (one view's event, the history, the profile) are concatenated and passed through a
  fully-connected layer with a ReLU: :math:`e_t \in \mathbb{R}^{fc}`.
* **RNN** (Eq. 1): one Bi-GRU per view, hidden d, over the view's events only (padding never
  enters the recurrence); :math:`h_t = [\overrightarrow{h}_t,
  \overleftarrow{h}_t] \in \mathbb{R}^{2d}`; its last states :math:`[\overrightarrow{h}_n,
  \overleftarrow{h}_1]` (zero for a view without events).
* **Intra-view attention** (Eq. 2-3): :math:`a_t = \mathrm{softmax}_t(h_t W_a
  \overrightarrow{h}_n)` over the view's events, :math:`W_a \in \mathbb{R}^{2d \times d}`;
  :math:`v_t = a_t h_t` (zero on padding).
* **Inter-view attention** (Eq. 4): the views are right-aligned to one length L (step i is the
  i-th event before tau in every view, as the paper's same-length sequences ending at the same
  action). For views p, q:
  :math:`A_p = \mathrm{softmax}(v_q v_p^\top / \sqrt{2d})\, v_p` (a row per step of q, the
  softmax over p's events), :math:`A_q = \mathrm{softmax}(v_p v_q^\top / \sqrt{2d})\, v_q`,
  :math:`r_{pq} = A_p \odot A_q \in \mathbb{R}^{L \times 2d}`, row i zero unless step i is an
  event in both views: :math:`r_{sb}, r_{st}, r_{tb}`.
* **Multi-task layer** (Eq. 5-6): the r's are read out (``readout="flatten"``, the paper's:
  left-padded to ``max_len`` steps and flattened; ``"sum"``: summed over the steps), then
  concatenated with the embedded history and profile and every Bi-GRU's last states; two MLP
  branches give the real-time (1 h) and long-term (1 d) logits;
  :math:`L = \mathrm{BCE}_{1h} + \mathrm{BCE}_{1d}`.

Ablations (the paper's Tables 4-6, each a ``Config`` switch): ``early_fusion`` merges the views'
embedded events by time (ties: swipe, tap, browse) into one sequence of at most ``max_len``
events for a single Bi-GRU with intra-view attention only; ``no_attention`` reads the Bi-GRU
outputs h out directly; ``no_inter_view`` reads out :math:`v_s, v_t, v_b`; ``no_intra_view``
runs the inter-view attention on h; ``sources`` keeps any subset of swipe, tap, browse,
history and profile (with fewer than two views there is no pair, and the views' v are read
out). Single-task training is the task's ``task_head`` option (1h or 1d): the model then
trains and predicts that head alone.
"""

from __future__ import annotations

import dataclasses
from itertools import combinations
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from contracts import dipn as contract
from models.base import OptionError, ShardModel, register_model
from models.systems.dipn.task import FEATURES, HEADS, VIEWS

SOURCES = (*VIEWS, "history", "profile")
READOUTS = ("flatten", "sum")


def masked_softmax(score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim, restricted to ``mask``; all-masked rows give zeros."""
    score = score.masked_fill(~mask, torch.finfo(score.dtype).min)
    return torch.softmax(score, -1) * mask


class GroupEmbedding(nn.Module):
    """One embedding table per feature of ``group``, concatenated, then FC + ReLU (Sec. 4.1).

    Shapes: (..., len(FEATURES[group])) int64 -> (..., out_dim).
    """

    def __init__(self, group: str, out_dim: int):
        super().__init__()
        keys = [f"{group}.{name}" for name in FEATURES[group]]
        self.tables = nn.ModuleList(
            nn.Embedding(contract.VOCAB[k], contract.EMBEDDING[k]) for k in keys)
        self.fc = nn.Linear(sum(contract.EMBEDDING[k] for k in keys), out_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        parts = [table(ids[..., j]) for j, table in enumerate(self.tables)]
        return torch.relu(self.fc(torch.cat(parts, -1)))


class BiGRU(nn.Module):
    """A bidirectional GRU (Eq. 1) over right-aligned, left-padded sequences whose padding
    never enters the recurrence: each direction reads its events first and the padding after
    (the forward GRU the sequence rolled left, the backward GRU the sequence reversed), so its
    states at the events are those of the events alone. (Packed sequences do the same, but
    their CPU backward pass grows with the square of the length.)

    Shapes: x (B, L, D), mask (B, L) -> h (B, L, 2d) zero on padding, last (B, 2d) =
    [forward state after the last event, backward state after the first], zero when empty.
    """

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.forward_gru = nn.GRU(in_dim, hidden, batch_first=True)
        self.backward_gru = nn.GRU(in_dim, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = mask.size(1)
        lengths = mask.sum(1)
        shift = (width - lengths)[:, None]  # (B, 1): padding steps
        steps = torch.arange(width, device=x.device)[None]
        first = ((steps + shift) % width)[..., None]  # events first, in time order
        ahead, _ = self.forward_gru(x.gather(1, first.expand_as(x)))
        ahead = ahead.gather(1, ((steps - shift) % width)[..., None].expand_as(ahead))
        behind = self.backward_gru(x.flip(1))[0].flip(1)  # events first, latest first
        h = torch.cat([ahead, behind], -1) * mask[..., None]  # (B, L, 2d)
        start = shift.clamp(max=width - 1)[..., None].expand(-1, 1, behind.size(-1))
        last = torch.cat([ahead[:, -1], behind.gather(1, start)[:, 0]], -1)  # (B, 2d)
        return h, last * (lengths > 0)[:, None].to(h.dtype)


class IntraViewAttention(nn.Module):
    """Eq. (2-3): a_t = softmax_t(h_t W_a h_n) over the valid steps, v = h * a.

    Shapes: h (B, L, 2d), forward_last (B, d), mask (B, L) -> v (B, L, 2d), a (B, L).
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(2 * hidden, hidden))  # W_a
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)

    def forward(self, h: torch.Tensor, forward_last: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        score = torch.einsum("bld,de,be->bl", h, self.weight, forward_last)  # Eq. (2)
        a = masked_softmax(score, mask)
        return h * a[..., None], a  # Eq. (3)


def inter_view_attention(v_p: torch.Tensor, mask_p: torch.Tensor, v_q: torch.Tensor,
                         mask_q: torch.Tensor) -> torch.Tensor:
    """Eq. (4): r_pq = A_p * A_q with A_p = softmax(v_q v_p^T / sqrt(2d)) v_p and
    A_q = softmax(v_p v_q^T / sqrt(2d)) v_q, each softmax over the other view's events.

    Shapes: v_p, v_q (B, L, 2d), mask_p, mask_q (B, L) -> (B, L, 2d), zero at a step that is
    padding in either view.
    """
    logits = v_q @ v_p.transpose(1, 2) / v_p.size(-1) ** 0.5  # (B, L_q, L_p)
    a_p = masked_softmax(logits, mask_p[:, None, :]) @ v_p  # rows: q's steps
    a_q = masked_softmax(logits.transpose(1, 2), mask_q[:, None, :]) @ v_q  # rows: p's steps
    return a_p * a_q * (mask_p & mask_q)[..., None]


def merge_by_time(xs: list[torch.Tensor], masks: list[torch.Tensor], ages: list[torch.Tensor],
                  max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Early fusion's input: the views' events in time order (ties in list order), right-aligned,
    the last ``max_len`` kept. Shapes: xs (B, L_i, D) -> (B, min(sum L_i, max_len), D), mask."""
    x, mask, age = torch.cat(xs, 1), torch.cat(masks, 1), torch.cat(ages, 1)
    key = torch.where(mask, -age, torch.iinfo(torch.int64).min)  # padding first, oldest next
    order = torch.sort(key, dim=1, stable=True).indices[:, -min(max_len, key.size(1)):]
    return x.gather(1, order[..., None].expand(-1, -1, x.size(-1))), mask.gather(1, order)


class TwoHeadModel(ShardModel):
    """A model with a real-time and a long-term logit (``logits(batch)`` -> (B, 2), HEADS
    order). ``loss`` sums the BCE of the trained heads (Eq. 5-6; ``meta["heads"]``, both by
    default); ``predict`` gives their probabilities (B, H)."""

    def __init__(self, config: Any, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.trained = [HEADS.index(h) for h in meta.get("heads", HEADS)]

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        logits = self.logits(batch)
        loss = 0 * logits.sum()  # an untrained head still takes part (DDP wants every grad)
        for j in self.trained:
            loss = loss + F.binary_cross_entropy_with_logits(logits[:, j],
                                                             batch[f"y_{HEADS[j]}"])
        return loss

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.sigmoid(self.logits(batch)[:, self.trained])


def mlp_head(in_dim: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, 1))


@register_model("dipn", "dipn")
class DIPN(TwoHeadModel):
    r"""DIPN with its ablation switches (see the module docstring for the equations).

    Args (``Config``):
        hidden (int): d, each GRU direction's state. (default: 32)
        fc (int): width of the FC after each group's embeddings. (default: 64)
        head_hidden (int): hidden width of each head's MLP. (default: 64)
        dropout (float): on the heads' input and hidden layer. (default: 0.1)
        readout (str): ``flatten`` (the paper's) or ``sum`` over steps. (default: flatten)
        early_fusion, no_attention, no_inter_view, no_intra_view (bool): the ablations.
            (default: False)
        sources (list[str]): inputs used, any of swipe, tap, browse, history, profile.
            (default: all)

    Adam's learning rate is the trainer's ``--lr``.

    Shapes:
        batch: as ``models.systems.dipn.task`` collates it; ``logits`` -> (B, 2);
        ``predict`` -> (B, H) probabilities; ``loss`` -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        hidden: int = 32
        fc: int = 64
        head_hidden: int = 64
        dropout: float = 0.1
        readout: str = "flatten"
        early_fusion: bool = False
        no_attention: bool = False
        no_inter_view: bool = False
        no_intra_view: bool = False
        sources: list[str] = dataclasses.field(default_factory=lambda: list(SOURCES))

        def __post_init__(self) -> None:
            unknown = sorted(set(self.sources) - set(SOURCES))
            if unknown or not self.sources:
                raise OptionError(f"DIPN.Config sources must be a non-empty subset of "
                                  f"{','.join(SOURCES)}, got {','.join(self.sources)}")
            if self.readout not in READOUTS:
                raise OptionError(f"DIPN.Config readout must be one of {READOUTS}, "
                                  f"got {self.readout!r}")
            if self.early_fusion and not set(self.sources) & set(VIEWS):
                raise OptionError("DIPN.Config early_fusion needs at least one view in sources")

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        c = config
        self.max_len = int(meta.get("max_len", contract.MAX_LEN))
        self.views = [v for v in VIEWS if v in c.sources]
        self.groups = [g for g in ("history", "profile") if g in c.sources]
        self.embed = nn.ModuleDict({g: GroupEmbedding(g, c.fc) for g in self.views + self.groups})
        self.streams = ["merged"] if c.early_fusion else self.views
        self.rnn = nn.ModuleDict({s: BiGRU(c.fc, c.hidden) for s in self.streams})
        intra = not (c.no_attention or c.no_intra_view)
        self.intra = nn.ModuleDict(
            {s: IntraViewAttention(c.hidden) for s in self.streams} if intra else {})
        inter = not (c.no_attention or c.no_inter_view)
        self.pairs = list(combinations(self.streams, 2)) if inter else []
        steps = self.max_len if c.readout == "flatten" else 1
        readout = (len(self.pairs) or len(self.streams)) * steps * 2 * c.hidden
        in_dim = readout + len(self.streams) * 2 * c.hidden + len(self.groups) * c.fc
        self.dropout = nn.Dropout(c.dropout)
        self.heads = nn.ModuleList(mlp_head(in_dim, c.head_hidden, c.dropout) for _ in HEADS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def inputs(self, batch: dict[str, Any]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """stream -> (embedded events (B, L, fc), mask (B, L))."""
        embedded = {v: (self.embed[v](batch[v]), batch[f"{v}_mask"]) for v in self.views}
        if not self.config.early_fusion:
            return embedded
        merged = merge_by_time([embedded[v][0] for v in self.views],
                               [embedded[v][1] for v in self.views],
                               [batch[f"{v}_age"] for v in self.views], self.max_len)
        return {"merged": merged}

    def read(self, part: torch.Tensor) -> torch.Tensor:
        """(B, L, 2d) -> (B, max_len * 2d) flattened, or (B, 2d) summed."""
        if self.config.readout == "sum":
            return part.sum(1)
        part = part[:, -self.max_len:]
        return F.pad(part, (0, 0, self.max_len - part.size(1), 0)).flatten(1)

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        features, outputs = [], {}
        for name, (x, mask) in self.inputs(batch).items():
            h, last = self.rnn[name](x, mask)  # Eq. (1)
            features.append(last)
            if name in self.intra:
                h, _ = self.intra[name](h, last[:, :self.config.hidden], mask)  # Eq. (2-3)
            outputs[name] = (h, mask)
        if self.pairs:
            parts = [inter_view_attention(*outputs[p], *outputs[q])  # Eq. (4)
                     for p, q in self.pairs]
        else:
            parts = [h for h, _ in outputs.values()]
        features += [self.read(part) for part in parts]
        features += [self.embed[g](batch[g]) for g in self.groups]
        z = self.dropout(torch.cat(features, -1))
        return torch.cat([head(z) for head in self.heads], -1)  # (B, 2)

    def __repr__(self) -> str:
        c = self.config
        heads = ",".join(HEADS[j] for j in self.trained)
        return (f"{self.__class__.__name__}(hidden={c.hidden}, fc={c.fc}, readout={c.readout}, "
                f"sources={','.join(c.sources)}, early_fusion={c.early_fusion}, "
                f"no_attention={c.no_attention}, no_inter_view={c.no_inter_view}, "
                f"no_intra_view={c.no_intra_view}, heads={heads})")
