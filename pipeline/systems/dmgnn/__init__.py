"""dmgnn: shard builders (see pipeline/systems/__init__.py)."""
