"""The search: a plan from preset and command line, one body per trial, the objective, results, export.

``python -m tuner.search --space lwta`` runs it (see ``__main__``).
"""

from tuner.search.config import SearchConfig, is_uri
from tuner.search.plan import SearchPlan, resolve_run
from tuner.search.run import SearchOutcome, run_search
from tuner.search.tuner_setup import DefineBySpace

__all__ = ["DefineBySpace", "SearchConfig", "SearchOutcome", "SearchPlan", "is_uri", "resolve_run", "run_search"]
