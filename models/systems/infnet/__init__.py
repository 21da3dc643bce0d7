"""infnet: task, model and baselines (see models/systems/__init__.py)."""
