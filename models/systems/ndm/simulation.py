"""Monte Carlo diffusion simulation (NDM paper Sec. 5.3) and the protocol models implement for it.

A simulation grows S copies of a cascade prefix one user at a time: the model scores every user
and Terminate given each copy's infected users so far, the simulator masks the infected ones,
samples, and hands the picks back to the model. Models plug in through ``Simulable``:

    begin(prefix (S, t), max_new) -> (state, scores (S, V))
    extend(state, users (S,))     -> (state, scores (S, V))
    reorder(state, index (S',))   -> state

Scores are unnormalised and unmasked, over V = |U| + 1 (Terminate = |U|). ``begin`` gets
``max_new``, the most users any simulation adds, to size its caches. ``reorder`` keeps the
simulations ``index`` names (the simulator drops finished ones); ``reorder_state`` does it for
states that are dicts of per-simulation tensors.

A model whose process draws random numbers of its own (the clock of a continuous-time cascade,
the coin flips of an independent cascade) sets ``draws_in_simulation = True``: ``begin`` then
also gets ``generator=``, the simulation's generator, so those draws follow the same seeded
stream as the simulator's own.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

#: The methods of ``Simulable``, in the order the simulator calls them.
SIMULATION_METHODS = ("begin", "extend", "reorder")


@runtime_checkable
class Simulable(Protocol):
    """A next-user model the Monte Carlo simulation can drive, one step at a time."""

    def begin(self, prefix: torch.Tensor, max_new: int = 0) -> tuple[Any, torch.Tensor]:
        """State after the prefixes (S, t) and the next-user scores (S, V), unmasked.

        ``max_new``: the most users a simulation will add (to size caches; may be exceeded).
        """
        ...

    def extend(self, state: Any, users: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Append one user per simulation (S,); the new state and scores (S, V), unmasked."""
        ...

    def reorder(self, state: Any, index: torch.Tensor) -> Any:
        """The state of the simulations ``index`` (S',) picks, in that order."""
        ...


def reorder_state(state: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
    """``Simulable.reorder`` for a dict state: tensors are indexed along their first (simulation)
    dimension, anything else (step counters) is kept."""
    return {
        key: value[index] if isinstance(value, torch.Tensor) else value
        for key, value in state.items()
    }


def require_simulable(model: Any) -> Simulable:
    """``model`` itself when it implements ``Simulable``.

    Raises:
        TypeError: naming the model and the methods it lacks.
    """
    if isinstance(model, Simulable):
        return model
    missing = [name for name in SIMULATION_METHODS if not callable(getattr(model, name, None))]
    raise TypeError(
        f"{type(model).__name__} cannot be simulated: it lacks {', '.join(missing)}. Models of "
        "the NDM task implement models.systems.ndm.simulation.Simulable: "
        "begin(prefix, max_new) -> (state, scores), extend(state, users) -> (state, scores), "
        "reorder(state, index) -> state"
    )


def _sample(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row by inverse CDF (cheaper than multinomial on CPU); zero-probability
    entries are never drawn."""
    cdf = probs.double().cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=cdf.dtype)
    pick = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    return pick.clamp_(max=probs.shape[1] - 1)


@torch.no_grad()
def simulate(
    model: Simulable,
    prefix: torch.Tensor,
    n_sims: int,
    max_new: int,
    vocab: int,
    generator: torch.Generator,
    early: int = 0,
    temperature: float = 1.0,
    terminate_bias: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Monte Carlo continuation of one cascade prefix, all simulations as one batch.

    Args:
        model: a ``Simulable`` model (checked: a TypeError names what it lacks).
        prefix: (t,) the given users.
        max_new: most users a simulation adds (it also stops at Terminate = vocab - 1).
        early: also count the users each simulation infects in its first ``early`` steps.
        temperature: sample from softmax(scores / temperature); 1 is the model's own
            distribution (the paper), below 1 sharpens it.
        terminate_bias: added to the Terminate score before the temperature; below 0 the
            simulations stop later (0: the paper).

    Returns:
        ``counts`` (vocab - 1,): how many simulations infected each user (prefix users: 0);
        ``early_counts`` likewise for the first ``early`` steps; ``sizes`` (n_sims,): users
        each simulation added.
    """
    model = require_simulable(model)
    device = prefix.device
    terminate = vocab - 1
    counts = torch.zeros(vocab, dtype=torch.float64, device=device)
    early_counts = torch.zeros(vocab, dtype=torch.float64, device=device)
    sizes = torch.zeros(n_sims, dtype=torch.long, device=device)
    if max_new <= 0:
        return {"counts": counts[:-1], "early_counts": early_counts[:-1], "sizes": sizes}
    if getattr(model, "draws_in_simulation", False):
        state, scores = model.begin(prefix.expand(n_sims, -1), max_new, generator=generator)
    else:
        state, scores = model.begin(prefix.expand(n_sims, -1), max_new)
    infected = torch.zeros(n_sims, vocab, dtype=torch.bool, device=device)
    infected[:, prefix] = True
    sim_of_row = torch.arange(n_sims, device=device)
    active = torch.ones(n_sims, dtype=torch.bool, device=device)
    shift = None
    if terminate_bias != 0.0:
        shift = torch.zeros(vocab, device=device)
        shift[terminate] = terminate_bias
    for step in range(max_new):
        if shift is not None:
            scores = scores + shift
        if temperature != 1.0:
            scores = scores / temperature
        probs = torch.softmax(scores.float().masked_fill(infected, float("-inf")), dim=-1)
        nxt = _sample(probs, generator)  # (rows,)
        active = active & (nxt != terminate)
        if not bool(active.any()):
            break
        took = nxt[active]
        ones = torch.ones(took.shape[0], dtype=torch.float64, device=device)
        counts.index_add_(0, took, ones)
        if step < early:
            early_counts.index_add_(0, took, ones)
        sizes[sim_of_row[active]] += 1
        if step + 1 == max_new:
            break
        if 2 * int(active.sum()) < active.numel():
            # Finished simulations keep their rows until they are half the batch, then the
            # batch is compacted: at most log2(n_sims) copies of the state.
            idx = active.nonzero().squeeze(1)
            sim_of_row, active, nxt = sim_of_row[idx], active[idx], nxt[idx]
            infected = infected[idx]
            state = model.reorder(state, idx)
        rows = active.nonzero().squeeze(1)
        infected[rows, nxt[rows]] = True
        state, scores = model.extend(state, nxt)
    return {"counts": counts[:-1], "early_counts": early_counts[:-1], "sizes": sizes}
