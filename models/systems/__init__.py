"""The torch side of each system: one package per system (``models/systems/<system>/``) holding
its task (``task.py``: shards -> batches, metrics), its model (one file per model) and its own
baselines. Everything here registers itself on import; ``models.base`` discovers it by walking
this package, so adding a system needs no list to edit.
"""
