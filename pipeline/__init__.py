"""Spark side of sharecast: schemas, the Delta lake, ingest, the world generator, statistics,
shard builders and the report. Never imports torch."""
