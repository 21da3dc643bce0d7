"""NDM, the Neural Diffusion Model (Yang, Sun, Liu, Han, Liu, Luan: "Neural Diffusion Model for
Microscopic Cascade Study", Sec. 4).

A cascade is the users u_0, u_1, ... in order of infection; the model predicts u_{j+1} from the
prefix (u_0 .. u_j), over all users plus a virtual "Terminate" user that ends the cascade.

Active user embeddings by multi-head attention over the previously infected users (Sec. 4.3):

    head_i   = sum_{k<=j} w^i_jk emb(u_k) W^V_i                                    Eq. (3)
    w^i_jk   = softmax_k( emb(u_j) W^Q_i (emb(u_k) W^K_i)^T )                       Eq. (4)
    act(u_j) = [head_1, ..., head_h] W^O                                           Eq. (5)
    act(u_j) <- LayerNorm(emb(u_j) + act(u_j))        (Sec. 4.5: residual + layer norm)

(Eq. (1)-(2) are the one-head case with identity projections.) Dropout (0.1) acts on the
attention weights. Prediction by position-specific projections of the last ``win`` active
embeddings (Sec. 4.4):

    pre_j = softmax( sum_{n=0}^{win-1} act(u_{j-n}) W^C_n + act(u_0) W^C_init F_init )  Eq. (6)-(7)

with users already infected in the prefix masked out of the softmax (Sec. 4.5), and training
maximises the log-likelihood of every next user, Terminate appended to each cascade:

    L = sum_c sum_{j=0}^{|c|-2} log pre_j[u_{j+1}]                                  Eq. (8)

(the loss is its negative mean per predicted position; Adam in the trainer). W^C_n and W^C_init
are d x |U| without bias, as in the paper; W^Q_i, W^K_i, W^V_i are d x d per head and W^O is
hd x d. The paper's Eq. (4) has no 1/sqrt(d) scaling; ``scale_attention`` adds it.

Incremental inference for Monte Carlo simulation (``begin`` / ``extend`` / ``reorder``, the
``models.systems.ndm.simulation.Simulable`` protocol) caches every head's keys and values and
the last ``win`` active embeddings: act(u_j) depends only on u_0 .. u_j, so each step costs one
query against the cache.

Args (``NDM.Config``):
    dim: embedding size d (default 64).
    heads: attention heads h (default 8).
    win: convolution window (default 3).
    f_init: F_init of Eq. (7), 0 or 1 (default 0; the paper uses 1 only for Twitter).
    dropout: dropout on attention weights (default 0.1).
    scale_attention: divide Eq. (4)'s scores by sqrt(d) (default False, as in the paper).

Shapes:
    batch["users"]: (B, L) user ids, padded with ``meta["pad"]``.
    batch["targets"]: (B, L) next user (Terminate after the last user), -100 on padding.
    predict(batch): (B, L, V) log-probabilities over V = |U| + 1 (Terminate = index |U|),
    already-infected users at -inf.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.base import register_model
from models.systems.ndm.cascade import CascadeModel


@register_model("ndm", "ndm")
class NDM(CascadeModel):
    @dataclasses.dataclass
    class Config:
        dim: int = 64
        heads: int = 8
        win: int = 3
        f_init: int = 0
        dropout: float = 0.1
        scale_attention: bool = False

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta, config.dim)
        d, h = config.dim, config.heads
        self.dim, self.heads, self.win = d, h, config.win
        self.w_q = nn.Linear(d, h * d, bias=False)  # W^Q_i, i = 1..h, side by side
        self.w_k = nn.Linear(d, h * d, bias=False)
        self.w_v = nn.Linear(d, h * d, bias=False)
        self.w_o = nn.Linear(h * d, d, bias=False)  # W^O
        self.norm = nn.LayerNorm(d)
        self.attn_drop = nn.Dropout(config.dropout)
        self.w_c = nn.Parameter(torch.empty(config.win, d, self.vocab))  # W^C_n
        self.w_init = nn.Parameter(torch.empty(d, self.vocab)) if config.f_init else None
        self._qkv_table: torch.Tensor | None = None
        self._dense_tables: tuple[torch.Tensor, torch.Tensor] | None = None
        #: simulate with tabulated attention when |U| + 2 is at most this
        self.dense_limit = 4096
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.reset_embedding()
        for lin in (self.w_q, self.w_k, self.w_v, self.w_o):
            nn.init.xavier_uniform_(lin.weight)
        self.norm.reset_parameters()
        bound = 1.0 / math.sqrt(self.dim)
        nn.init.uniform_(self.w_c, -bound, bound)
        if self.w_init is not None:
            nn.init.uniform_(self.w_init, -bound, bound)

    # -- training-time forward over whole prefixes ---------------------------------------------

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, L, h*d) -> (B, h, L, d)
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.dim).transpose(1, 2)

    def active(self, users: torch.Tensor) -> torch.Tensor:
        """act(u_j) for every prefix position: (B, L) -> (B, L, d)."""
        e = self.emb(users)  # (B, L, d)
        q = self._split_heads(self.w_q(e))  # (B, h, L, d)
        k = self._split_heads(self.w_k(e))
        v = self._split_heads(self.w_v(e))
        scores = q @ k.transpose(-1, -2)  # (B, h, L, L): emb(u_j) W^Q_i (emb(u_k) W^K_i)^T
        if self.config.scale_attention:
            scores = scores / math.sqrt(self.dim)
        length = users.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=users.device).tril()
        allowed = causal[None, None] & (users != self.pad)[:, None, None, :]
        scores = scores.masked_fill(~allowed, float("-inf"))
        weights = self.attn_drop(torch.softmax(scores, dim=-1))  # Eq. (4)
        heads = weights @ v  # (B, h, L, d)                        Eq. (3)
        b = users.shape[0]
        act = self.w_o(heads.transpose(1, 2).reshape(b, length, self.heads * self.dim))  # Eq. (5)
        return self.norm(e + act)  # LayerNorm(emb + act), Sec. 4.5

    def logits(self, users: torch.Tensor) -> torch.Tensor:
        """Unnormalised Eq. (7) scores for every prefix position, infected users not masked."""
        act = self.active(users)  # (B, L, d)
        length = act.shape[1]
        out = act @ self.w_c[0]  # Eq. (6), n = 0
        for n in range(1, min(self.win, length)):
            shifted = F.pad(act, (0, 0, n, 0))[:, :length]  # act(u_{j-n}), zero before u_0
            out = out + shifted @ self.w_c[n]
        if self.w_init is not None:
            out = out + (act[:, :1] @ self.w_init) * self.config.f_init  # Eq. (7)
        return out  # (B, L, V)

    def log_probs(self, users: torch.Tensor) -> torch.Tensor:
        return self.masked_log_softmax(self.logits(users), users)

    # -- incremental inference for simulation --------------------------------------------------

    def train(self, mode: bool = True) -> NDM:
        self._qkv_table = None  # weights may change: the per-user tables are stale
        self._dense_tables = None
        return super().train(mode)

    def _dense(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-head score and value tables over all users, for small user sets.

        With no positions in Eq. (3)-(5), attention from u_j is over the *set* u_0 .. u_j, so
        ``scores[u, h, v] = emb(u) W^Q_h (emb(v) W^K_h)^T`` and ``vo[h, v] = emb(v) W^V_h W^O_h``
        can be tabulated once; a step is then a row gather, a softmax over the infected users and
        one (S, h|U|) x (h|U|, d) product, whatever the prefix length.
        """
        if self.n_users + 2 > self.dense_limit:
            return None
        if self._dense_tables is None or self.training:
            e = self.emb.weight  # (N, d)
            n, d, h = e.shape[0], self.dim, self.heads
            q = self.w_q(e).view(n, h, d).transpose(0, 1)  # (h, N, d)
            k = self.w_k(e).view(n, h, d).transpose(0, 1)
            scores = (q @ k.transpose(1, 2)).transpose(0, 1).contiguous()  # (N, h, N)
            if self.config.scale_attention:
                scores = scores / math.sqrt(d)
            v = self.w_v(e).view(n, h, d).transpose(0, 1)  # (h, N, d)
            w_o = self.w_o.weight.t().view(h, d, d)  # rows of W^O per head
            vo = (v @ w_o).reshape(h * n, d)  # (h*N, d)
            self._dense_tables = (scores, vo)
        return self._dense_tables

    def _table(self) -> torch.Tensor:
        """Per-user [emb, emb W^Q, emb W^K, emb W^V], computed once per evaluation."""
        if self._qkv_table is None or self.training:
            e = self.emb.weight
            self._qkv_table = torch.cat([e, self.w_q(e), self.w_k(e), self.w_v(e)], dim=-1)
        return self._qkv_table

    def _lookup(self, users: torch.Tensor):
        hd = self.heads * self.dim
        rows = self._table()[users]
        e, q, k, v = rows.split([self.dim, hd, hd, hd], dim=-1)
        return e, q, k, v

    def begin(
        self, prefix: torch.Tensor, max_new: int = 0
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """State after the prefix (S, t) and the next-user scores (S, V), unmasked.

        The key/value cache is allocated for ``t + max_new`` users and grows if needed.
        """
        act = self.active(prefix)  # (S, t, d)
        _, _, k, v = self._lookup(prefix)
        s, t = prefix.shape
        capacity = t + max(max_new, 1)
        keys = k.new_empty(s, self.heads, capacity, self.dim)
        values = v.new_empty(s, self.heads, capacity, self.dim)
        keys[:, :, :t] = self._split_heads(k)  # (S, h, t, d)
        values[:, :, :t] = self._split_heads(v)
        state = {
            "k": keys,
            "v": values,
            "t": t,
            "acts": act[:, -self.win:].flip(1),  # (S, <=win, d), most recent first
            "act0": act[:, 0],
        }
        if self._dense() is not None:
            member = torch.zeros(s, self.n_users + 2, dtype=torch.bool, device=prefix.device)
            member[torch.arange(s, device=prefix.device)[:, None], prefix] = True
            state = {"member": member, "acts": state["acts"], "act0": state["act0"]}
        return state, self._scores(state)

    def extend(
        self, state: dict[str, Any], users: torch.Tensor
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """Append one user per simulation (S,) and return the new state and scores (S, V)."""
        if "member" in state:
            return self._extend_dense(state, users)
        e, q, k, v = self._lookup(users)
        s, t = users.shape[0], state["t"]
        keys, values = state["k"], state["v"]
        if t == keys.shape[2]:
            keys = torch.cat([keys, torch.empty_like(keys)], dim=2)
            values = torch.cat([values, torch.empty_like(values)], dim=2)
        keys[:, :, t] = k.view(s, self.heads, self.dim)
        values[:, :, t] = v.view(s, self.heads, self.dim)
        t += 1
        # Eq. (4) for the new user's query against u_0 .. u_j: (S, h, 1, t)
        scores = q.view(s, self.heads, 1, self.dim) @ keys[:, :, :t].transpose(-1, -2)
        if self.config.scale_attention:
            scores = scores / math.sqrt(self.dim)
        heads = torch.softmax(scores, dim=-1) @ values[:, :, :t]  # (S, h, 1, d), Eq. (3)
        act = self.norm(e + self.w_o(heads.reshape(s, self.heads * self.dim)))  # Eq. (5)
        acts = torch.cat([act[:, None], state["acts"]], dim=1)[:, : self.win]
        new = {"k": keys, "v": values, "t": t, "acts": acts, "act0": state["act0"]}
        return new, self._scores(new)

    def _extend_dense(
        self, state: dict[str, Any], users: torch.Tensor
    ) -> tuple[dict[str, Any], torch.Tensor]:
        table, vo = self._dense()
        s, n = users.shape[0], self.n_users + 2
        member = state["member"].clone()
        member[torch.arange(s, device=users.device), users] = True
        scores = table[users]  # (S, h, N): Eq. (4) scores of the new user against everyone
        scores = scores.masked_fill(~member[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (S, h, N), zero off the infected set
        act = weights.reshape(s, self.heads * n) @ vo  # Eq. (3) + (5): (S, d)
        act = self.norm(self.emb(users) + act)
        acts = torch.cat([act[:, None], state["acts"]], dim=1)[:, : self.win]
        new = {"member": member, "acts": acts, "act0": state["act0"]}
        return new, self._scores(new)

    def _scores(self, state: dict[str, Any]) -> torch.Tensor:
        acts = state["acts"]  # (S, n, d), n <= win
        n = acts.shape[1]
        # sum_n act(u_{j-n}) W^C_n as one matmul: (S, n*d) @ (n*d, V)
        out = acts.reshape(acts.shape[0], -1) @ self.w_c[:n].reshape(n * self.dim, self.vocab)
        if self.w_init is not None:
            out = out + (state["act0"] @ self.w_init) * self.config.f_init
        return out

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(users={self.n_users}, dim={c.dim}, heads={c.heads}, "
            f"win={c.win}, f_init={c.f_init}, dropout={c.dropout})"
        )
