"""risenet: rising-star prediction task, RiseNet and its baselines (see models/systems)."""
