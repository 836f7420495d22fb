"""The search command: its settings, the plan it resolves them into, and the run that ties the rooms together.

``python -m tuner.search --space lwta`` runs it (see ``__main__``). The work itself happens in the
rooms beside this one: :mod:`tuner.trials` (Tune and Optuna), :mod:`tuner.cluster` (Ray, resources,
storage), :mod:`tuner.console` (what the terminal shows) and :mod:`tuner.export`.
"""

from tuner.search.config import SearchConfig
from tuner.search.plan import SearchPlan, resolve_run
from tuner.search.run import SearchOutcome
from tuner.search.screening import run_search

__all__ = ["SearchConfig", "SearchOutcome", "SearchPlan", "resolve_run", "run_search"]
