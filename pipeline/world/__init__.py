"""The synthetic Taocode world: users, items, share cascades, purchases, browses and touches
with planted, switchable effects whose true strengths are recorded in ``truth/world``.

No public Taocode data exists, so every statistic and model is first tested here. Everything is
generated on the executors: each random draw is a hash of (seed, salt, the row's identity)
(``draws``), so a seed gives the same tables whatever the partitioning, and nothing loops over
users or records on the driver. The only driver-side loop is over the fixed number of cascade
hops.

The world, in order of generation (each module documents its part):

* ``config``: ``WorldConfig``, the effects switched on, and what a *week* is.
* ``entities``: users in communities with consumption tiers and Pareto activity, hubs; items
  with price tiers, a price index, appeal and categories; organic browses (the *browse model*,
  ``sigmoid(base_logit + appeal)``); the seeds of the cascades.
* ``cascades``: hop by hop, who shares with whom and which records convert (the *share model*);
  ``network``: the prior degrees, neighbours and tie histories that E2, E3 and E9 read;
  ``recency``: the earlier contacts that E10 reads and its choice among them.
* ``rising``: E5's rising stars and their demand surge; ``touches``: the touch sessions around
  browses (page visits of swipes and taps, DIPN's touch views), where E8 plants intent.
* ``generate``: the raw tables and their commit; ``truth``: ``truth/world``.

The planted effects:

* **E1** a share converts better than a browse, more so for items with a high price index.
* **E2** conversion grows with the gap between the sender's and the receiver's prior degree
  (in + out, earlier weeks: what Fig. 2(b) measures).
* **E3** conversion grows with the receiver's share-graph neighbours who adopted the item
  earlier (what Fig. 2(c) measures).
* **E4** conversion is higher when the sender received the item earlier, higher still if they
  bought it.
* **E5** rising stars: bursty diffusion and hub attention in the four weeks before each star's
  outside demand surge. The surges happen with E5 off too (every star has its own surge week),
  so a rising star exists either way; E5 is the diffusion that announces it.
* **E6** hubs share high-appeal items and their receivers convert more.
* **E7** receivers and items follow the sender's consumption tier.
* **E8** a browse's touch session and the browse itself carry the intent of its purchase
  within 1 hour (intent 2) / 1 day (intent 1), each view only if named in ``e8_views``
  ("touch,browse" by default): intent sessions are longer, spend more time on product pages,
  tap purchase buttons more and swipe slower and shorter (``e8_touch`` session sd per intent
  level); intent browses stay longer and favourite / add to cart more. Off, or in a view left
  out, sessions and browses look the same whatever follows.
* **E9** a share converts better when its sender shared dear items (PI >= 0.5) with this
  receiver in the four weeks before, worse after cheap ones, whatever the item now shared.
* **E10** recency: a record's receiver is, with probability ``e10_repeat``, one of the sender's
  earlier contacts (shared with or received from, before the share), chosen with weight
  ``exp(-age / e10_tau_days)``, age = time since the pair last interacted; so a tie's pull
  decays with the time since its last use. Off, a receiver depends on no history: repeats
  happen (communities are small) but at the same rate whatever the contact's age. E10 changes
  who receives, not who converts. It is the one effect off by default (``DEFAULT_EFFECTS``):
  name it (``--effects all`` or ``+E10``).
"""

from pipeline.world.cascades import expand, next_sharers
from pipeline.world.config import DEFAULT_EFFECTS, EFFECTS, WEEK_S, WorldConfig, parse_effects
from pipeline.world.draws import exponential, normal, uniform
from pipeline.world.entities import (
    browses,
    item_attributes,
    items,
    seeds,
    user_attributes,
    users,
)
from pipeline.world.generate import (
    config_id,
    generate,
    generate_to_lake,
    to_raw_purchases,
    to_raw_shares,
)
from pipeline.world.network import (
    neighbour_adoptions,
    network_neighbours,
    prior_degrees,
    tie_history,
    with_prior_degrees,
    with_tie_score,
)
from pipeline.world.recency import contact_history
from pipeline.world.rising import surge
from pipeline.world.touches import touches
from pipeline.world.truth import truth_rows

__all__ = [
    "DEFAULT_EFFECTS",
    "EFFECTS",
    "WEEK_S",
    "WorldConfig",
    "browses",
    "config_id",
    "contact_history",
    "expand",
    "exponential",
    "generate",
    "generate_to_lake",
    "item_attributes",
    "items",
    "neighbour_adoptions",
    "network_neighbours",
    "next_sharers",
    "normal",
    "parse_effects",
    "prior_degrees",
    "seeds",
    "surge",
    "tie_history",
    "to_raw_purchases",
    "to_raw_shares",
    "touches",
    "truth_rows",
    "uniform",
    "user_attributes",
    "users",
    "with_prior_degrees",
    "with_tie_score",
]
