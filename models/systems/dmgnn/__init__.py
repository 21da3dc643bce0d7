"""dmgnn: DM-GNN (a decayed TGAT trained on links and consumption tiers) and its baselines."""
