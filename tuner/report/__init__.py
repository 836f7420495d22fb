"""The report: score models (exports or trained recipes), render the table, draw the figures.

``python -m tuner.report`` runs it (see ``__main__``). Scoring (:mod:`.scoring`) is apart from
rendering (:mod:`.table`, :mod:`.figures`).
"""

from tuner.report.candidates import Candidate, exported_candidates, quick_base, recipe_candidates
from tuner.report.config import ReportConfig, default_suite
from tuner.report.pareto import ParetoInputs, pareto_inputs, pareto_points
from tuner.report.scoring import FigureData, ReportRow, check_rows, evaluate_candidate, max_certified_radius
from tuner.report.table import column_titles, print_table, table_markdown, write_table

__all__ = [
    "Candidate",
    "FigureData",
    "ParetoInputs",
    "ReportConfig",
    "ReportRow",
    "check_rows",
    "column_titles",
    "default_suite",
    "evaluate_candidate",
    "exported_candidates",
    "max_certified_radius",
    "pareto_inputs",
    "pareto_points",
    "print_table",
    "quick_base",
    "recipe_candidates",
    "table_markdown",
    "write_table",
]
