"""The world's configuration: size, seed, switchable effects, the true strengths of the planted
mechanisms, and the world's clock.

**Time and weeks.** Every time the generator draws is ``t``, whole seconds since ``start``
00:00 UTC, a Monday. *Week n* (n = 1, 2, ..., ``weeks``) is the n-th seven-day block of the
world, Monday 00:00 UTC to the next Monday 00:00 UTC: the records with
``(n - 1) * WEEK_S <= t < n * WEEK_S``. This is the one meaning of "week" on the Spark side:

* the raw tables' partition column ``week_start`` is that block's Monday
  (``date_trunc('week', ts)`` in the session time zone, UTC in ``spark-defaults.conf``);
* the statistics number the same blocks 1, 2, ... from the world's first ``week_start``
  (``pipeline.stats.common.with_week``);
* the generator numbers them from 0 (``floor(t / WEEK_S)``, ``clock.week_index``); where it
  compares weeks (E2's earlier weeks, E9's four weeks before) only differences count, so the
  two numberings give the same degrees and tie histories. E10's recency counts seconds, not
  weeks.

Docstrings count weeks from 1: "weeks 5-6" are ``4 * WEEK_S <= t < 6 * WEEK_S``.

A system's shards may look back from each example instead: InfNet's "observation weeks"
(``contracts.infnet``) are the seven-day windows that end where a query's day starts, so a
query on a Wednesday sees Wednesday-to-Tuesday windows that straddle two calendar weeks. They
are named observation windows there, never "week n" of the world.

**Overrides.** Every field can be set by name from text or YAML values (``world_config``,
``field_value``): ``python -m jobs.generate_world --set e9_tie=1.5 --config world.yaml``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import yaml

EFFECTS = ("E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9", "E10")
#: The effects of a world that names none. E10 rewires who receives a share (and costs one
#: more generation pass), so it is on only where named: ``--effects all`` or ``+E10``.
DEFAULT_EFFECTS = tuple(e for e in EFFECTS if e != "E10")

#: The behaviour views that can carry E8's purchase intent (``WorldConfig.e8_views``).
E8_VIEWS = ("touch", "browse")

#: Seconds in a week: week n (from 1) holds ``(n - 1) * WEEK_S <= t < n * WEEK_S``.
WEEK_S = 7 * 86400

_RISING_OFFSET = 137


@dataclass
class WorldConfig:
    """Size, seed, effects and the true strengths of the planted mechanisms.

    Args:
        share_records: target number of share records (the result is within a few percent).
        seed: everything is a deterministic function of it.
        weeks: length of the world in weeks, starting on ``start`` (a Monday).
        effects: the planted effects switched on (subset of ``EFFECTS``; ``DEFAULT_EFFECTS``).
        touch_session_rate: share of organic browses with a touch session around them.
        swipes_per_session, taps_per_session: mean swipes and taps of a session (37.7 and 9.3,
            the paper's Table 1 ratios to browses).
        e8_views: the views that carry E8's intent, a comma list of ``E8_VIEWS`` ("touch,browse";
            "touch", "browse" or "" for none); with E8 off no view does.
        e8_touch: shift of a touch session's latent styles per intent level, in units of their
            session-to-session spread (0.6; ``touches``).
        coupon_hesitant, coupon_cold: the probability that a coupon brings a purchase planned
            later that day into the hour (0.5), or makes a non-buyer buy within it (0.02)
            (``coupons``).
        e10_repeat: with E10 on, the probability that a record's receiver is replaced by one of
            the sender's earlier contacts (0.5; ``recency``).
        e10_tau_days: the decay time of a contact's pull: an earlier contact is chosen with
            weight ``exp(-age / e10_tau_days)``, age = days since the pair last interacted
            (2.5).
    """

    share_records: int = 200_000
    seed: int = 7
    weeks: int = 12
    start: dt.date = dt.date(2026, 1, 5)
    effects: frozenset[str] = field(default_factory=lambda: frozenset(DEFAULT_EFFECTS))
    # population
    users_per_record: float = 0.3
    items_per_record: float = 0.01
    min_items: int = 500
    community_size: int = 40
    top_categories: int = 10
    leaves_per_top: int = 8
    hub_fraction: float = 0.01
    hub_boost: float = 40.0
    pareto_alpha: float = 1.6
    # cascades
    hops: int = 3
    fanout: float = 2.0
    hub_fanout: float = 6.0
    in_community: float = 0.85
    reshare: float = 0.18
    reshare_bought: float = 0.45
    reshare_delay_days: float = 4.0
    item_zipf: float = 2.2
    browses_per_record: float = 0.4
    touch_session_rate: float = 0.12
    swipes_per_session: float = 37.7
    taps_per_session: float = 9.3
    buy_delay_hours: float = 8.0
    seed_bought: float = 0.3
    # conversion model
    base_logit: float = -4.0
    appeal_scale: float = 1.0
    e1_lift: float = 0.35
    e1_pi_slope: float = 1.2
    e2_gap: float = 0.2
    e3_close: float = 0.6
    e4_received: float = 0.35
    e4_bought: float = 0.5
    e6_hub: float = 0.4
    e9_tie: float = 2.0
    e10_repeat: float = 0.5
    e10_tau_days: float = 2.5
    e5_hub_pick: float = 0.03
    e5_other_pick: float = 0.003
    rising_every: int = 0  # 0: as many stars as top slots, see ``_resolve_rising_every``
    surge_factor: float = 1.5
    surge_permille: float = 1.0
    weekly_price_sd: float = 0.08
    e7_same_tier: float = 0.7
    e8_views: str = "touch,browse"
    e8_touch: float = 0.6
    # the answer to a coupon (``coupons``; never in the logs)
    coupon_hesitant: float = 0.5
    coupon_cold: float = 0.02

    def __post_init__(self) -> None:
        unknown = set(self.effects) - set(EFFECTS)
        if unknown:
            raise ValueError(f"unknown effects {sorted(unknown)}; known: {EFFECTS}")
        if self.start.weekday() != 0:
            raise ValueError(f"start must be a Monday, got {self.start} ({self.start:%A})")
        if self.share_records < 100:
            raise ValueError("share_records must be at least 100")
        if not 0 <= self.e10_repeat <= 1:
            raise ValueError(f"e10_repeat is a probability, got {self.e10_repeat}")
        if self.e10_tau_days <= 0:
            raise ValueError(f"e10_tau_days must be positive, got {self.e10_tau_days}")
        self.effects = frozenset(self.effects)
        self.e8_views = ",".join(parse_views(self.e8_views))
        self._resolve_rising_every()

    @property
    def n_users(self) -> int:
        n = max(self.community_size * 10, int(self.share_records * self.users_per_record))
        return n - n % self.community_size

    @property
    def n_items(self) -> int:
        n = max(self.min_items, int(self.share_records * self.items_per_record))
        return n - n % 5

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time()) + dt.timedelta(weeks=self.weeks)

    def _resolve_rising_every(self) -> None:
        """By default one star per top slot of every (category, surge week): a category's
        ``ceil(surge_permille / 1000 * items in it)`` slots times the categories times the
        surge weeks, so every window's label period has its top slots filled by stars."""
        if self.rising_every <= 0:
            stars = self.top_categories * self.surge_slots * len(self.surge_weeks)
            self.rising_every = max(1, self.n_items // max(1, stars))

    @property
    def surge_slots(self) -> int:
        """Top slots per category after a window: ``ceil(surge_permille / 1000 * n)``."""
        return max(1, math.ceil(self.surge_permille / 1000 * self.n_items / self.top_categories))

    @property
    def surge_weeks(self) -> range:
        """The weeks (from 1) a rising star's surge can start in: from week 5, the first
        label week of the first window, to the second-to-last week (a surge lasts two weeks)."""
        return range(5, max(6, self.weeks))

    @property
    def rising_offset(self) -> int:
        """Rising stars are the items with ``id % rising_every == rising_offset``."""
        return _RISING_OFFSET % self.rising_every

    def on(self, effect: str) -> bool:
        return effect in self.effects

    def intent_in(self, view: str) -> bool:
        """Whether ``view`` ("touch" or "browse") carries E8's intent: E8 on and the view in
        ``e8_views``."""
        if view not in E8_VIEWS:
            raise ValueError(f"unknown view {view!r}; known: {', '.join(E8_VIEWS)}")
        return self.on("E8") and view in self.e8_views.split(",")

    def records_per_seed(self, hub: bool) -> float:
        """Expected share records of a cascade seeded by a hub or a normal user."""

        def receivers(n: float) -> float:  # E[1 + floor(Exp(1) * (n - 1))]
            return 1 + 1 / (math.exp(1 / (n - 1)) - 1) if n > 1 else 1.0

        later = (1 - self.hub_fraction) * receivers(self.fanout) + self.hub_fraction * receivers(
            self.hub_fanout
        )
        p_buy = 0.15  # typical share conversion with the default effects
        reshare = (1 - p_buy) * self.reshare + p_buy * self.reshare_bought
        total, level = 0.0, receivers(self.hub_fanout if hub else self.fanout)
        for _ in range(self.hops):
            total += level
            level *= reshare * later
        # Records past the world's end are dropped: the late ones of the last weeks.
        return total * 0.95


def parse_effects(text: str) -> frozenset[str]:
    """``"all"`` (every effect), ``"none"``, a comma list like ``"E1,E3"``, or changes to the
    default set (``DEFAULT_EFFECTS``): ``"-E2"`` removes, ``"+E10"`` adds, ``"-E8,+E10"``
    both."""
    text = text.strip()
    if text.lower() == "all":
        return frozenset(EFFECTS)
    if text.lower() == "none":
        return frozenset()
    parts = [p.strip().upper() for p in text.split(",") if p.strip()]
    if parts and all(p[0] in "+-" for p in parts):
        chosen = (set(DEFAULT_EFFECTS) - {p[1:] for p in parts if p[0] == "-"}) | {
            p[1:] for p in parts if p[0] == "+"}
    else:
        chosen = set(parts)
    unknown = chosen - set(EFFECTS)
    if unknown:
        raise ValueError(f"unknown effects {sorted(unknown)}; use {', '.join(EFFECTS)}")
    return frozenset(chosen)


def parse_views(text: str) -> tuple[str, ...]:
    """``"touch,browse"``, ``"touch"``, ``"browse"`` or ``""`` -> the views, in ``E8_VIEWS``
    order; an unknown name is a ``ValueError`` that lists the known ones."""
    if not isinstance(text, str):
        raise ValueError(f"e8_views must be text like 'touch,browse', got {text!r}")
    chosen = {p.strip().lower() for p in text.split(",") if p.strip()}
    unknown = chosen - set(E8_VIEWS)
    if unknown:
        raise ValueError(f"unknown e8_views {sorted(unknown)}; use {', '.join(E8_VIEWS)}")
    return tuple(v for v in E8_VIEWS if v in chosen)


# -- setting fields by name ---------------------------------------------------------------------


class ConfigError(ValueError):
    """An override that names no ``WorldConfig`` field or holds a value of the wrong type."""


#: What each field type accepts, as said in error messages.
_EXPECTED = {
    int: "an integer",
    str: "text",
    float: "a number",
    dt.date: "a date YYYY-MM-DD",
    frozenset[str]: "all, none, a list like E1,E3, or -E2 (all but E2)",
}


@functools.cache
def _field_types() -> tuple[tuple[str, object], ...]:
    hints = typing.get_type_hints(WorldConfig)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(WorldConfig))


def field_types() -> dict[str, object]:
    """Every ``WorldConfig`` field and its type, in declaration order."""
    return dict(_field_types())


def _unknown(name: str) -> ConfigError:
    return ConfigError(
        f"unknown WorldConfig field {name!r}; valid fields: {', '.join(field_types())}"
    )


def field_value(name: str, value: object) -> object:
    """``value`` cast to field ``name``'s type: text (``--set``) or a YAML scalar, or for
    ``effects`` a list of effect names. Raises ``ConfigError`` naming the field and, for a value
    of the wrong type, the type expected."""
    types = field_types()
    if name not in types:
        raise _unknown(name)
    kind = types[name]
    try:
        return _cast(kind, value)
    except (TypeError, ValueError) as err:
        # parse_effects names the unknown effects and the known ones
        detail = f" ({err})" if kind == frozenset[str] and isinstance(err, ValueError) else ""
        raise ConfigError(
            f"{name}: expected {_EXPECTED[kind]}, got {value!r}{detail}"
        ) from None


def _cast(kind: object, value: object) -> object:
    if isinstance(value, bool):  # YAML's true/false is no number, date or effect list
        raise TypeError("a boolean")
    if kind is str:
        if isinstance(value, str):
            return value.strip()
    elif kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value.strip())
    elif kind is float:
        number = float(value.strip()) if isinstance(value, str) else value
        if isinstance(number, int | float) and math.isfinite(number):
            return float(number)
    elif kind is dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            return dt.date.fromisoformat(value.strip())
    elif kind == frozenset[str]:
        if isinstance(value, str):
            return parse_effects(value)
        if isinstance(value, list | tuple | set | frozenset) and all(
            isinstance(v, str) for v in value
        ):
            return parse_effects(",".join(value))
    raise TypeError(type(value).__name__)


def world_config(values: Mapping[str, object]) -> WorldConfig:
    """A ``WorldConfig`` with the fields in ``values`` cast (``field_value``), the rest default.
    Raises ``ConfigError`` for a bad key or value, ``ValueError`` for a world that cannot be
    (a ``start`` that is no Monday, fewer than 100 records)."""
    return WorldConfig(**{name: field_value(name, value) for name, value in values.items()})


def assignments(pairs: Iterable[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> ``{key: value}`` (later pairs win); keys are checked."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(
                f"expected KEY=VALUE, got {pair!r}; keys: {', '.join(field_types())}"
            )
        if name not in field_types():
            raise _unknown(name)
        out[name] = value
    return out


def yaml_values(text: str, source: str) -> dict[str, object]:
    """The mapping field -> value of a YAML document (empty: no values); keys are checked."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{source}: expected a mapping of WorldConfig field -> value, "
            f"got {type(loaded).__name__}"
        )
    for name in loaded:
        if name not in field_types():
            raise ConfigError(f"{source}: {_unknown(str(name))}")
    return dict(loaded)
