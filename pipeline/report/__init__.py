"""The static report: InfNet Fig. 2(a)-(d), RiseNet Fig. 2(a)-(d) and Fig. 3, E8's intent
distributions (DIPN Sec. 1) and E10's re-contact by the age of a tie from ``stats/*``, and each
system's model results from ``results/*``.

``build_report(lake, out_dir)`` writes ``index.html`` and one PNG per figure. Every figure comes
with its numbers in an HTML table, one sentence saying what it shows, the significance tests
of ``stats/tests`` that belong to it and, when the lake holds ``truth/world`` (a generated
world), the planted effect's truth rows beside the measurement. The results section gives, per
system, the test metrics of each model's latest runs (``pipeline.report.results``).

Only small tables are read, as Arrow (aggregates, histograms, per-leaf and per-window rows,
results); the record-level ``stats/share_features`` never is.
"""

from pipeline.report.common import Figure
from pipeline.report.page import FIGURES, build_report

__all__ = ["FIGURES", "Figure", "build_report"]
