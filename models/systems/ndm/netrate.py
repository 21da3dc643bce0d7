"""NetRate baseline of the NDM paper (Sec. 5.1): exponential transmission rates on co-occurrence
links (Gomez-Rodriguez, Balduzzi, Schoelkopf: "Uncovering the temporal dynamics of diffusion
networks", ICML 2011), fitted by projected gradient, simulated as a continuous-time independent
cascade.

Each link u -> v (u before v in some training cascade, ``diffusion.Links``) has a rate
alpha_uv >= 0; once u is infected at t_u it infects v after an Exp(alpha_uv) delay unless v was
infected earlier. A cascade c, observed over a window [0, T], has the log-likelihood

    log L(c) = sum_{i >= 1} [ log sum_{j < i} alpha_{u_j u_i}                    (hazard)
                              - sum_{j < i} alpha_{u_j u_i} (t_i - t_j) ]        (survival)
               - sum_i sum_{m not in c} alpha_{u_i m} (T - t_i)              (uninfected users)

which is concave in alpha and, regrouped, log L = sum_g log h_g - lin . alpha: one hazard term
h_g per infection and one linear coefficient per link (``NetRateTerms``). The fit maximises the
sum over training cascades by projected gradient ascent with the gradient scaled per link by
alpha / lin and a unit step:

    alpha <- clip(alpha + (alpha / lin) * grad, 0, max_rate)
           = clip(alpha * sum_{g containing the link} (alpha / h_g) / lin, 0, max_rate)

which is the EM update of the hazard mixture (each infection's credit split among its possible
parents): every step raises the likelihood and keeps alpha >= 0, where a plain gradient step
of fixed size cannot serve rates that span ten orders of magnitude, and clipping a whole
infection's parents to 0 would make its hazard 0. Rates that underflow ``RATE_FLOOR`` are 0.

Times (the shards' ``times``: epoch seconds for Irvine, hours for Memetracker) are made
relative to each cascade's first infection and divided by the longest training cascade's
duration (``diffusion.normalise_times``), so T = ``window`` = 1 covers every training cascade.

Simulation (``Simulable``) from infected set S at time t (the given users at t = 0): the total
rate into uninfected users is R = sum_{v not in S} sum_{u in S} alpha_uv, the next infection
comes after Exp(R) and is v with probability proportional to its rate; when that time passes T
the cascade ends. So the scores are log-probabilities

    P(Terminate) = exp(-R (T - t)),   P(v) = (sum_{u in S} alpha_uv / R) (1 - exp(-R (T - t)))

and after v is drawn the clock advances by an Exp(R) delay conditioned to end before T, drawn
with the simulation's generator. ``predict`` (the next-user ranking) scores every prefix with
the clock at 0.

Args (``NetRate.Config``):
    window: observation window T in units of the longest training cascade (default 1.0).
    iters: projected-gradient steps (default 200).
    max_rate: upper bound of the projection, in 1 / (longest training cascade) (default 1e6).

Shapes:
    predict(batch) -> (B, L, |U| + 1) log-probabilities, infected users at -inf.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch

from models.base import Task, register_model
from models.systems.ndm.diffusion import DiffusionModel, Links, cascade_times, normalise_times

log = logging.getLogger(__name__)

#: Rates below this (per longest training cascade) are projected to 0.
RATE_FLOOR = 1e-100


@dataclasses.dataclass
class NetRateTerms:
    """The NetRate log-likelihood of a set of cascades as sum_g log h_g - linear . alpha.

    Shapes:
        hazard_link, hazard_group: (P,) for every (parent j, child i) pair with a link, the
            link and which infection g (one per cascade position i >= 1) it may have caused.
        linear: (E,) each rate's coefficient in the survival terms.
    """

    hazard_link: torch.Tensor
    hazard_group: torch.Tensor
    n_groups: int
    linear: torch.Tensor


def netrate_terms(
    cascades: Sequence[torch.Tensor], times: Sequence[torch.Tensor], window: float, links: Links
) -> NetRateTerms:
    """``NetRateTerms`` of ``cascades`` (each (n,) users) with ``times`` (each (n,), from 0,
    non-decreasing) observed over [0, ``window``]. Pairs without a link (rate fixed at 0) drop
    out; an infection left with no linked parent has hazard 0 (log-likelihood -inf).

    The uninfected-user term is sum_i (T - t_i) (out_i - sum_{m in c} alpha_{u_i m}) with out_i
    the sum of u_i's out-rates: per link, the window left after each infection of its source,
    less that of infections whose target is in the cascade too.
    """
    n_users, n_links = links.n_users, len(links)
    left = torch.zeros(n_users, dtype=torch.float64)  # sum of (T - t_i) per user
    pair_links, pair_values, hazard_link, hazard_group = [], [], [], []
    groups = 0
    by_length: dict[int, list[int]] = {}
    for c, users in enumerate(cascades):
        by_length.setdefault(users.numel(), []).append(c)
    for n, members in sorted(by_length.items()):  # same-length cascades as one (k, n) block
        users = torch.stack([cascades[c].long() for c in members])  # (k, n)
        t = torch.stack([times[c].double() for c in members])  # (k, n)
        left.index_add_(0, users.flatten(), (window - t).flatten())
        a, b = torch.triu_indices(n, n, 1)  # a < b: a may have infected b
        forward = links.lookup(users[:, a], users[:, b])  # (k, pairs)
        backward = links.lookup(users[:, b], users[:, a])
        keep = forward >= 0
        group = groups + torch.arange(len(members))[:, None] * (n - 1) + b - 1  # (k, pairs)
        hazard_link.append(forward[keep])
        hazard_group.append(group[keep])
        groups += len(members) * max(n - 1, 0)
        # forward pairs: survival (t_b - t_a), less the window left after a (target infected);
        # backward links: the window left after b, whose target a is infected
        pair_links += [forward[keep], backward[backward >= 0]]
        pair_values += [(t[:, b] - window)[keep], -(window - t[:, b])[backward >= 0]]
    linear = left[links.src].clone() if n_links else torch.zeros(0, dtype=torch.float64)
    if pair_links:
        linear.index_add_(0, torch.cat(pair_links), torch.cat(pair_values))
    cat = (lambda xs: torch.cat(xs)) if hazard_link else (lambda xs: torch.zeros(0, dtype=int))
    return NetRateTerms(cat(hazard_link), cat(hazard_group), groups, linear.clamp_(min=0.0))


def hazards(alpha: torch.Tensor, terms: NetRateTerms) -> torch.Tensor:
    """(G,) the total rate of each infection's possible parents."""
    out = torch.zeros(terms.n_groups, dtype=alpha.dtype, device=alpha.device)
    return out.index_add_(0, terms.hazard_group, alpha[terms.hazard_link])


def log_likelihood(alpha: torch.Tensor, terms: NetRateTerms) -> torch.Tensor:
    """sum_c log L(c) of the module docstring for rates ``alpha`` (E,)."""
    return hazards(alpha, terms).log().sum() - terms.linear @ alpha


def scaled_step(
    alpha: torch.Tensor, terms: NetRateTerms, scale: torch.Tensor, step: float = 1.0,
    max_rate: float = 1e6,
) -> torch.Tensor:
    """One projected step alpha + step * alpha * scale * grad, clipped to [0, ``max_rate``]
    (``scale`` is 1 / lin for NetRate's full step); rates below ``RATE_FLOOR`` become 0."""
    # alpha_e / h_g <= 1 for every parent e of g, so tiny hazards cannot blow the step up.
    inverse = 1.0 / hazards(alpha, terms).clamp_min(1e-300)
    grad = torch.zeros_like(alpha).index_add_(0, terms.hazard_link, inverse[terms.hazard_group])
    alpha = (alpha + step * alpha * scale * (grad - terms.linear)).clamp_(0.0, max_rate)
    # The EM iterates shrink unsupported rates geometrically; below RATE_FLOOR they are 0 (and
    # stay there), which keeps the arithmetic out of subnormal numbers.
    return torch.where(alpha < RATE_FLOOR, 0.0, alpha)


def fit_rates(
    terms: NetRateTerms, alpha: torch.Tensor | None = None, iters: int = 200,
    max_rate: float = 1e6,
) -> torch.Tensor:
    """Rates maximising ``log_likelihood`` by scaled projected gradient ascent (module
    docstring), from ``alpha`` (default: every rate 1)."""
    n_links = terms.linear.numel()
    alpha = torch.ones(n_links, dtype=torch.float64) if alpha is None else alpha.double().clone()
    # A link whose source is always followed by its target at once has no survival cost; it
    # is held by the cap.
    scale = 1.0 / terms.linear.clamp_min(1.0 / max_rate)
    for _ in range(iters):
        alpha = scaled_step(alpha, terms, scale, 1.0, max_rate)
    return alpha


@register_model("ndm", "netrate")
class NetRate(DiffusionModel):
    fitted_buffers = ("link_src", "link_dst", "rate")

    @dataclasses.dataclass
    class Config:
        window: float = 1.0
        iters: int = 200
        max_rate: float = 1e6

    def __init__(self, config: Config, meta: dict[str, Any]):
        super().__init__(config, meta)
        self.register_buffer("link_src", torch.zeros(0, dtype=torch.long))
        self.register_buffer("link_dst", torch.zeros(0, dtype=torch.long))
        self.register_buffer("rate", torch.zeros(0))  # (E,) alpha of each link
        # observation window in normalised time and the time unit (the shards' units)
        self.register_buffer("window", torch.tensor(float(config.window)))
        self.register_buffer("time_scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("fit_seconds", torch.tensor(0.0))

    # -- fitting -------------------------------------------------------------------------------

    def training_cascades(
        self, examples: Sequence[dict[str, Any]], task: Task | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], Links, float]:
        """Users and normalised times of ``examples`` (single-user cascades included: they
        only add survival terms), their links and the window; sets ``time_scale``."""
        users = [e["users"].long().cpu() for e in examples]
        times, scale = normalise_times(cascade_times(examples, task))
        self.time_scale.fill_(scale)
        window = max([self.config.window] + [float(t[-1]) for t in times if t.numel()])
        self.window.fill_(window)
        return users, times, Links.from_cascades(users, self.n_users), window

    def fit(self, examples: Sequence[dict[str, Any]], task: Task | None) -> None:
        """Rates maximising the training cascades' likelihood (times read as
        ``diffusion.cascade_times`` says)."""
        started = time.perf_counter()
        users, times, links, window = self.training_cascades(examples, task)
        terms = netrate_terms(users, times, window, links)
        c = self.config
        rate = fit_rates(terms, iters=c.iters, max_rate=c.max_rate)
        self.set_rates(links, rate)
        self.fit_seconds.fill_(time.perf_counter() - started)
        log.info("netrate: %d links, log-likelihood %.1f, fitted in %.1f s", len(links),
                 log_likelihood(rate, terms).item(), self.fit_seconds.item())

    def set_rates(self, links: Links, rate: torch.Tensor) -> None:
        device = self.window.device
        self.link_src = links.src.to(device)
        self.link_dst = links.dst.to(device)
        self.rate = rate.float().to(device)

    # -- the race of exponential clocks ----------------------------------------------------------

    def out_rates(self, users: torch.Tensor, rate: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) users -> (N, |U|) their out-rates (``rate`` per link, default the fitted ones);
        rows of Terminate and padding are 0."""
        rate = self.rate if rate is None else rate
        row, link = self.links().out_links(users)
        out = torch.zeros(users.numel(), self.n_users, dtype=rate.dtype, device=rate.device)
        return out.index_put_((row, self.link_dst[link]), rate[link], accumulate=True)

    def race_scores(
        self, into: torch.Tensor, infected: torch.Tensor, clock: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (..., V): log-probabilities of the next infection (and Terminate) given the
        rates ``into`` every user (..., |U|) from the ``infected`` ones at ``clock`` (...);
        and the total rate R (...)."""
        into = into.masked_fill(infected, 0.0)
        total = into.sum(-1)
        left = (self.window - clock).clamp_min(0.0)
        moves = total > 0
        log_go = torch.log(-torch.expm1(-total * left))  # log P(an infection before T)
        users = into.log() - total.clamp_min(1e-30).log().unsqueeze(-1) + log_go.unsqueeze(-1)
        users = torch.where(moves.unsqueeze(-1), users, float("-inf"))
        return torch.cat([users, (-total * left).unsqueeze(-1)], dim=-1), total

    def log_probs(self, users: torch.Tensor) -> torch.Tensor:
        batch, length = users.shape
        into = self.out_rates(users.flatten()).view(batch, length, -1).cumsum(1)  # (B, L, |U|)
        clock = torch.zeros(batch, length, device=users.device)
        scores, _ = self.race_scores(into, torch.zeros_like(into, dtype=torch.bool), clock)
        return self.masked_log_softmax(scores, users)

    # -- simulation (Simulable): rates into each user, infected users, clock, last R -----------

    def begin(
        self, prefix: torch.Tensor, max_new: int = 0, generator: torch.Generator | None = None
    ) -> tuple[dict[str, Any], torch.Tensor]:
        sims, given = prefix.shape
        into = self.out_rates(prefix.flatten()).view(sims, given, -1).sum(1)  # (S, |U|)
        infected = torch.zeros(sims, self.n_users, dtype=torch.bool, device=prefix.device)
        infected.scatter_(1, prefix.long().clamp(max=self.n_users - 1), True)
        clock = torch.zeros(sims, device=prefix.device)
        scores, total = self.race_scores(into, infected, clock)
        state = {"into": into, "infected": infected, "clock": clock, "total": total,
                 "generator": generator}
        return state, scores

    def extend(
        self, state: dict[str, Any], users: torch.Tensor
    ) -> tuple[dict[str, Any], torch.Tensor]:
        moved = users < self.n_users  # Terminate (a finished simulation) keeps its state
        total, clock = state["total"], state["clock"]
        left = (self.window - clock).clamp_min(0.0)
        draw = torch.rand(users.shape, generator=state["generator"], device=users.device)
        # An Exp(R) delay conditioned on ending before T: inverse CDF of the truncated law.
        delay = -torch.log1p(draw * torch.expm1(-total * left)) / total.clamp_min(1e-30)
        clock = torch.where(moved & (total > 0), clock + torch.minimum(delay, left), clock)
        into = state["into"] + self.out_rates(torch.where(moved, users, self.n_users))
        infected = state["infected"].clone()
        rows = moved.nonzero().squeeze(1)
        infected[rows, users[rows]] = True
        scores, total = self.race_scores(into, infected, clock)
        state = {"into": into, "infected": infected, "clock": clock, "total": total,
                 "generator": state["generator"]}
        return state, scores

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(users={self.n_users}, links={self.rate.numel()}, "
                f"window={self.window.item():.3g})")
