"""One thin entry script per spark-submit / CLI job. No logic lives here."""
