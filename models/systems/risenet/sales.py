r"""Sales-series baselines of the RiseNet paper (Sec. 5): DA-RNN, LSTNet and MTGNN.

They read only the item's weekly series :math:`X_t` (``x_item``: log1p of price, sales, share
records and diffusion scale, ``(B, T, 4)``) and its top category, never the diffusion graphs, and
score the window by one logit: :math:`P(y=1) = \sigma(\mathrm{logit})`.

Rising stars are rare, so every neural RiseNet baseline trains on BCE with logits whose positive
class is weighted by :math:`w_+ = (1 - \pi) / \pi`, :math:`\pi` the training split's positive
rate (``meta["pos_rate"]``), unless ``Config.pos_weight`` sets it (``binary_loss``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.base import ShardModel, register_model

NUM_ITEM_FEATURES = 4
#: index of log1p(sales) in ``x_item``: DA-RNN's target series
SALES = 1


def positive_weight(pos_weight: float, meta: dict[str, Any]) -> float:
    """``pos_weight`` when set (> 0), else neg/pos of the training split (1.0 when unknown)."""
    if pos_weight > 0:
        return float(pos_weight)
    rate = meta.get("pos_rate")
    if rate is None or not 0 < float(rate) < 1:
        return 1.0
    rate = float(rate)
    return (1.0 - rate) / rate


def binary_loss(logits: torch.Tensor, y: torch.Tensor, weight: float) -> torch.Tensor:
    """BCE with logits, positives weighted by ``weight``. Shapes: (B,), (B,) -> scalar."""
    return F.binary_cross_entropy_with_logits(
        logits, y, pos_weight=torch.tensor(weight, dtype=logits.dtype, device=logits.device)
    )


class CategoryEmbedding(nn.Module):
    """The item's top category as a learned vector; ids outside ``0..categories-1`` share one
    extra row, so an unseen category cannot index out of range.

    Shapes: (B,) int64 -> (B, dim).
    """

    def __init__(self, categories: int, dim: int):
        super().__init__()
        self.categories = max(int(categories), 0)
        self.weight = nn.Parameter(torch.empty(self.categories + 1, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.1)

    def forward(self, category: torch.Tensor) -> torch.Tensor:
        known = (category >= 0) & (category < self.categories)
        other = torch.full_like(category, self.categories)
        return F.embedding(torch.where(known, category, other), self.weight)


class BinaryBaseline(ShardModel):
    """What the neural baselines share: ``logits(batch) -> (B,)``, the weighted loss, and
    ``predict = sigmoid(logits)``. Subclasses set ``self.pos_weight`` and define ``logits``."""

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return binary_loss(self.logits(batch), batch["y"], self.pos_weight)

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.sigmoid(self.logits(batch))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.config).items())
        return f"{self.__class__.__name__}({fields})"


def reset_all(module: nn.Module) -> None:
    """``reset_parameters()`` of every sub-module that has one (layers of torch and PyG)."""
    for child in module.modules():
        if child is not module and hasattr(child, "reset_parameters"):
            child.reset_parameters()


@register_model("risenet", "darnn")
class DARNN(BinaryBaseline):
    r"""DA-RNN (Qin et al., IJCAI 2017): a dual-stage attention encoder-decoder RNN.

    The original forecasts a target series from n driving series. Its encoder LSTM reads, at
    each step, the driving series re-weighted by an *input attention* that looks at each whole
    series :math:`x^k` (Eq. 8-9: :math:`e^k_t = v_e^\top \tanh(W_e[h_{t-1}; s_{t-1}] + U_e
    x^k)`, :math:`\alpha^k_t = \mathrm{softmax}_k(e^k_t)`, :math:`\tilde x_t = \alpha_t \odot
    x_t`); its decoder LSTM attends over the encoder states (*temporal attention*, Eq. 12-14:
    :math:`\beta^i_t = \mathrm{softmax}_i(v_d^\top \tanh(W_d[d_{t-1}; s'_{t-1}] + U_d h_i))`,
    :math:`c_t = \sum_i \beta^i_t h_i`) and is fed the target history
    :math:`\tilde y_t = \tilde w^\top [y_t; c_t] + \tilde b` (Eq. 15); the output is
    :math:`v_y^\top (W_y [d_T; c_T] + b_w) + b_v` (Eq. 22).

    Here the driving series are the 4 weekly item features plus the category embedding (a
    constant series per dimension), the target history is log1p(sales), and the output is the
    rising-star logit. Every observed week feeds the decoder (the label lies after the window,
    so :math:`y_T` is known), which also keeps the decoder in use when T = 1.

    Args (``Config``): hidden (64): encoder/decoder LSTM and attention size; category_dim (8);
    dropout (0.2) on the final state; pos_weight (0.0 = neg/pos of ``meta["pos_rate"]``).

    Shapes: batch as in ``models.systems.risenet.task``; predict -> (B,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        #: encoder and decoder LSTM size, also the attention size
        hidden: int = 64
        #: size of the top-category embedding (its dimensions join the driving series)
        category_dim: int = 8
        #: dropout on [d_T; c_T] before the output layer
        dropout: float = 0.2
        #: BCE weight of the positive class; 0 = (1 - pos_rate) / pos_rate from the task meta
        pos_weight: float = 0.0

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        h, steps = config.hidden, int(meta["weeks"])
        self.pos_weight = positive_weight(config.pos_weight, meta)
        self.category = CategoryEmbedding(int(meta.get("categories", 0)), config.category_dim)
        self.num_series = NUM_ITEM_FEATURES + config.category_dim
        # input attention, Eq. (8)
        self.enc_state = nn.Linear(2 * h, h)  # W_e
        self.enc_series = nn.Linear(steps, h, bias=False)  # U_e
        self.enc_score = nn.Linear(h, 1, bias=False)  # v_e
        self.encoder = nn.LSTMCell(self.num_series, h)
        # temporal attention, Eq. (12)
        self.dec_state = nn.Linear(2 * h, h)  # W_d
        self.dec_hidden = nn.Linear(h, h, bias=False)  # U_d
        self.dec_score = nn.Linear(h, 1, bias=False)  # v_d
        self.dec_input = nn.Linear(1 + h, 1)  # w~, b~ of Eq. (15)
        self.decoder = nn.LSTMCell(1, h)
        self.out_hidden = nn.Linear(2 * h, h)  # W_y, b_w of Eq. (22)
        self.out = nn.Linear(h, 1)  # v_y, b_v
        self.dropout = nn.Dropout(config.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_all(self)

    def _temporal_context(self, enc: torch.Tensor, d: torch.Tensor, s: torch.Tensor):
        """Eq. (12)-(14): the context c over the encoder states ``enc`` (B, T, h)."""
        score = self.dec_score(torch.tanh(
            self.dec_state(torch.cat([d, s], -1)).unsqueeze(1) + self.dec_hidden(enc)
        )).squeeze(-1)  # (B, T)
        return (torch.softmax(score, dim=1).unsqueeze(-1) * enc).sum(1)  # (B, h)

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        x_item = batch["x_item"]  # (B, T, 4)
        b, steps, _ = x_item.shape
        cat = self.category(batch["category"]).unsqueeze(1).expand(b, steps, -1)
        series = torch.cat([x_item, cat], -1)  # (B, T, n) driving series
        keys = self.enc_series(series.transpose(1, 2))  # (B, n, h): U_e x^k
        h = s = series.new_zeros(b, self.config.hidden)
        states = []
        for t in range(steps):
            score = self.enc_score(torch.tanh(
                self.enc_state(torch.cat([h, s], -1)).unsqueeze(1) + keys
            )).squeeze(-1)  # (B, n) Eq. (8)
            alpha = torch.softmax(score, dim=1)  # Eq. (9)
            h, s = self.encoder(alpha * series[:, t], (h, s))  # Eq. (10)-(11)
            states.append(h)
        enc = torch.stack(states, 1)  # (B, T, h)
        d = s = series.new_zeros(b, self.config.hidden)
        target = x_item[:, :, SALES : SALES + 1]  # (B, T, 1)
        for t in range(steps):
            c = self._temporal_context(enc, d, s)
            y_tilde = self.dec_input(torch.cat([target[:, t], c], -1))  # Eq. (15)
            d, s = self.decoder(y_tilde, (d, s))  # Eq. (16)
        c = self._temporal_context(enc, d, s)
        hidden = self.out_hidden(self.dropout(torch.cat([d, c], -1)))
        return self.out(hidden).squeeze(-1)  # Eq. (22)


@register_model("risenet", "lstnet")
class LSTNet(BinaryBaseline):
    r"""LSTNet (Lai et al., SIGIR 2018): convolution, recurrent and recurrent-skip components with
    an autoregressive highway.

    The original forecasts every variable of a multivariate series: a convolution over time
    spanning all variables (Sec. 3.2) feeds a GRU (:math:`h^R_T`, Sec. 3.3) and a skip-GRU that
    links steps ``skip`` apart (:math:`h^S_{T-i}`, i < skip, Eq. 2); a dense layer combines them
    (Eq. 3) and a linear autoregressive part over the last ``ar_window`` raw steps is added
    (Eq. 4-5), keeping the output scale-sensitive.

    Here the variables are the 4 weekly item features, the dense layer also sees the category
    embedding and gives one logit, and the autoregressive part is linear in the last
    ``ar_window`` weeks of all variables. The convolution kernel, the skip and the window are
    clipped to the window length, so T = 1 runs (kernel 1, skip 1).

    Args (``Config``): hidden (64): convolution channels and GRU size; skip_hidden (16);
    kernel (2) weeks; skip (2) weeks; ar_window (2) weeks; category_dim (8); dropout (0.2);
    pos_weight (0.0 = neg/pos of ``meta["pos_rate"]``).

    Shapes: batch as in ``models.systems.risenet.task``; predict -> (B,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        #: convolution channels and recurrent GRU size
        hidden: int = 64
        #: skip-GRU size
        skip_hidden: int = 16
        #: convolution width in weeks (clipped to T)
        kernel: int = 2
        #: skip-GRU period in weeks (1 or 2 suit short windows; clipped to the conv output)
        skip: int = 2
        #: weeks the autoregressive part reads (clipped to T)
        ar_window: int = 2
        #: size of the top-category embedding
        category_dim: int = 8
        #: dropout after the convolution and the GRUs
        dropout: float = 0.2
        #: BCE weight of the positive class; 0 = (1 - pos_rate) / pos_rate from the task meta
        pos_weight: float = 0.0

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        for key in ("kernel", "skip", "ar_window"):
            if getattr(config, key) < 1:
                raise ValueError(f"LSTNet.Config.{key} must be >= 1, got {getattr(config, key)}")
        steps = int(meta["weeks"])
        self.pos_weight = positive_weight(config.pos_weight, meta)
        self.kernel = min(config.kernel, steps)
        conv_steps = steps - self.kernel + 1
        self.skip = min(config.skip, conv_steps)
        self.skip_steps = conv_steps // self.skip  # pt of the paper
        self.ar_window = min(config.ar_window, steps)
        h, n = config.hidden, NUM_ITEM_FEATURES
        self.category = CategoryEmbedding(int(meta.get("categories", 0)), config.category_dim)
        self.conv = nn.Conv2d(1, h, kernel_size=(self.kernel, n))
        self.gru = nn.GRU(h, h, batch_first=True)
        self.skip_gru = nn.GRU(h, config.skip_hidden, batch_first=True)
        self.dense = nn.Linear(h + self.skip * config.skip_hidden + config.category_dim, 1)
        self.highway = nn.Linear(self.ar_window * n, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_all(self)

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        x = batch["x_item"]  # (B, T, n)
        b = x.shape[0]
        c = F.relu(self.conv(x.unsqueeze(1))).squeeze(-1)  # (B, hidden, T')
        c = self.dropout(c).transpose(1, 2)  # (B, T', hidden)
        _, h_r = self.gru(c)
        h_r = self.dropout(h_r.squeeze(0))  # (B, hidden) h^R_T
        p, pt = self.skip, self.skip_steps
        s = c[:, c.shape[1] - pt * p :].reshape(b, pt, p, -1).transpose(1, 2)  # (B, p, pt, h)
        _, h_s = self.skip_gru(s.reshape(b * p, pt, -1))  # Eq. (2)
        h_s = self.dropout(h_s.squeeze(0).reshape(b, -1))  # (B, p * skip_hidden)
        cat = self.category(batch["category"])
        neural = self.dense(torch.cat([h_r, h_s, cat], -1))  # Eq. (3)
        ar = self.highway(x[:, -self.ar_window :].reshape(b, -1))  # Eq. (4)
        return (neural + ar).squeeze(-1)  # Eq. (5)


class MixProp(nn.Module):
    r"""MTGNN's mix-hop propagation (Eq. 7-8): :math:`H^{(k)} = \beta H_{in} + (1-\beta)\tilde A
    H^{(k-1)}`, :math:`\tilde A = \tilde D^{-1}(A + I)`, output :math:`\sum_k H^{(k)} W^{(k)}` (a
    1x1 convolution over the concatenated hops).

    Shapes: x (B, C, N, L), adj (N, N) -> (B, C, N, L).
    """

    def __init__(self, channels: int, depth: int, alpha: float, dropout: float):
        super().__init__()
        self.depth, self.alpha = depth, alpha
        self.select = nn.Conv2d((depth + 1) * channels, channels, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        adj = adj + torch.eye(adj.shape[0], device=adj.device, dtype=adj.dtype)
        adj = adj / adj.sum(1, keepdim=True)
        hops, h = [x], x
        for _ in range(self.depth):
            h = self.alpha * x + (1 - self.alpha) * torch.einsum("bcwl,vw->bcvl", h, adj)
            hops.append(h)
        return self.select(self.dropout(torch.cat(hops, 1)))


class DilatedInception(nn.Module):
    """MTGNN's dilated inception layer (Eq. 9): 1-D convolutions over time with several kernel
    widths, each cut to the shortest output, concatenated on channels.

    Shapes: (B, C_in, N, L) -> (B, C_out, N, L - (max(kernels) - 1) * dilation).
    """

    def __init__(self, c_in: int, c_out: int, kernels: list[int], dilation: int):
        super().__init__()
        if c_out % len(kernels):
            raise ValueError(f"MTGNN: hidden {c_out} must be divisible by {len(kernels)} kernels")
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out // len(kernels), (1, k), dilation=(1, dilation))
            for k in kernels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [conv(x) for conv in self.convs]
        length = min(o.shape[-1] for o in outs)
        return torch.cat([o[..., -length:] for o in outs], 1)


@register_model("risenet", "mtgnn")
class MTGNN(BinaryBaseline):
    r"""MTGNN (Wu et al., KDD 2020): a graph among the variables of a multivariate series, learned
    from node embeddings, with mix-hop graph convolutions and dilated temporal convolutions.

    The original: graph learning (Eq. 1-6) :math:`M_1 = \tanh(\alpha E_1\Theta_1)`,
    :math:`M_2 = \tanh(\alpha E_2\Theta_2)`, :math:`A = \mathrm{ReLU}(\tanh(\alpha(M_1M_2^\top
    - M_2M_1^\top)))`, keeping the top-k entries of each row; layers of gated dilated inception
    (Eq. 9, tanh filter times sigmoid gate) followed by mix-hop propagation along :math:`A` and
    :math:`A^\top`, with residual and skip connections and layer norm; the input is left-padded
    to the receptive field; 1x1 output convolutions.

    Here the variables (nodes) are the 4 weekly item features, each a one-channel series; the
    output convolutions' per-node states are flattened, joined by the category embedding and
    an MLP gives the logit.

    Args (``Config``): hidden (64): residual/conv/skip channels; node_dim (16) of the graph
    embeddings; top_k (3) neighbours kept per variable; layers (2); kernels ([2, 3]);
    gcn_depth (2) hops; prop_alpha (0.05) = beta; tanh_alpha (3.0); category_dim (8);
    dropout (0.3); pos_weight (0.0 = neg/pos of ``meta["pos_rate"]``).

    Shapes: batch as in ``models.systems.risenet.task``; predict -> (B,), loss -> scalar.
    """

    @dataclasses.dataclass
    class Config:
        #: residual, convolution and skip channels (divisible by the number of kernels)
        hidden: int = 64
        #: size of the node embeddings E_1, E_2 of the graph learner
        node_dim: int = 16
        #: neighbours kept per variable in the learned adjacency (clipped to 4)
        top_k: int = 3
        #: temporal-convolution + graph-convolution layers
        layers: int = 2
        #: widths of the dilated inception's kernels, in weeks
        kernels: list[int] = dataclasses.field(default_factory=lambda: [2, 3])
        #: mix-hop propagation depth
        gcn_depth: int = 2
        #: retain ratio beta of the input in each hop
        prop_alpha: float = 0.05
        #: saturation rate alpha of the graph learner
        tanh_alpha: float = 3.0
        #: size of the top-category embedding
        category_dim: int = 8
        dropout: float = 0.3
        #: BCE weight of the positive class; 0 = (1 - pos_rate) / pos_rate from the task meta
        pos_weight: float = 0.0

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        if not config.kernels or min(config.kernels) < 1 or config.layers < 1:
            raise ValueError(f"MTGNN: needs layers >= 1 and positive kernels, got {config}")
        self.pos_weight = positive_weight(config.pos_weight, meta)
        n, c = NUM_ITEM_FEATURES, config.hidden
        self.top_k = max(1, min(config.top_k, n))
        reach = max(config.kernels) - 1
        self.seq_len = max(int(meta["weeks"]), config.layers * reach + 1)  # receptive field
        self.embed1 = nn.Embedding(n, config.node_dim)
        self.embed2 = nn.Embedding(n, config.node_dim)
        self.theta1 = nn.Linear(config.node_dim, config.node_dim)
        self.theta2 = nn.Linear(config.node_dim, config.node_dim)
        self.start = nn.Conv2d(1, c, kernel_size=1)
        self.skip_in = nn.Conv2d(1, c, kernel_size=(1, self.seq_len))
        self.filters, self.gates, self.skips = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.gconv_out, self.gconv_in = nn.ModuleList(), nn.ModuleList()
        self.norms = nn.ModuleList()
        length = self.seq_len
        for _ in range(config.layers):
            length -= reach  # dilation 1 in every layer (single-step MTGNN)
            self.filters.append(DilatedInception(c, c, config.kernels, 1))
            self.gates.append(DilatedInception(c, c, config.kernels, 1))
            self.skips.append(nn.Conv2d(c, c, kernel_size=(1, length)))
            self.gconv_out.append(MixProp(c, config.gcn_depth, config.prop_alpha, config.dropout))
            self.gconv_in.append(MixProp(c, config.gcn_depth, config.prop_alpha, config.dropout))
            self.norms.append(nn.LayerNorm((c, n, length)))
        self.skip_out = nn.Conv2d(c, c, kernel_size=(1, length))
        self.end = nn.Conv2d(c, c, kernel_size=1)
        self.category = CategoryEmbedding(int(meta.get("categories", 0)), config.category_dim)
        self.head = nn.Sequential(
            nn.Linear(c * n + config.category_dim, c), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(c, 1),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_all(self)

    def adjacency(self) -> torch.Tensor:
        """Eq. (1)-(6): the learned (N, N) adjacency among the item features, top-k per row."""
        a = self.config.tanh_alpha
        m1 = torch.tanh(a * self.theta1(self.embed1.weight))
        m2 = torch.tanh(a * self.theta2(self.embed2.weight))
        adj = F.relu(torch.tanh(a * (m1 @ m2.T - m2 @ m1.T)))  # Eq. (3)
        keep = adj.topk(self.top_k, dim=1).indices  # Eq. (4)-(5)
        mask = torch.zeros_like(adj).scatter_(1, keep, 1.0)
        return adj * mask

    def logits(self, batch: dict[str, Any]) -> torch.Tensor:
        x = batch["x_item"].transpose(1, 2).unsqueeze(1)  # (B, 1, N, T)
        x = F.pad(x, (self.seq_len - x.shape[-1], 0))  # (B, 1, N, seq_len)
        adj = self.adjacency()
        skip = self.skip_in(self.dropout(x))  # (B, C, N, 1)
        h = self.start(x)
        for i in range(self.config.layers):
            residual = h
            h = torch.tanh(self.filters[i](h)) * torch.sigmoid(self.gates[i](h))
            h = self.dropout(h)
            skip = skip + self.skips[i](h)
            h = self.gconv_out[i](h, adj) + self.gconv_in[i](h, adj.T)
            h = self.norms[i](h + residual[..., -h.shape[-1] :])
        skip = F.relu(skip + self.skip_out(h))
        out = F.relu(self.end(skip)).flatten(1)  # (B, C * N)
        cat = self.category(batch["category"])
        return self.head(torch.cat([out, cat], -1)).squeeze(-1)

