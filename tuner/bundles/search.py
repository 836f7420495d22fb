"""The searcher of fused trials: each Tune trial is a bundle of up to k Optuna trials of one shape.

:class:`BundleSearch` asks the Optuna study for trials (the space's starting points first, then its
sampler's), sorts them by shape (:func:`trainables.bundle.bundle_key`: runs of one shape share a
bundle) and hands Tune a bundle of k of one shape at a time; a trial whose shape has no k
companions yet waits in a pool for the next bundle, and once the search's trials are all asked the
pool empties into smaller bundles. Every member is an Optuna trial of its own: the bundle's trial
body reports its epochs, asks the study's pruner and tells its outcome (:mod:`.trial`); this
searcher fails the members a crashed bundle left unfinished.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from ray.tune.search import Searcher

from trainables.bundle import bundle_key
from trainables.train import RunSpec
from tuner.cluster.storage import StudyStorage
from tuner.trials.outcome import Outcome, member_trial_id
from tuner.trials.strategy import DefineBySpace
from tuner.trials.study import OUTCOME, TUNE_ID
from tuner.trials.trial import TrialContext, trial_spec

__all__ = ["BundleKey", "BundleSearch"]


@dataclass(frozen=True)
class BundleKey:
    """The shape of a suggestion: suggestions with equal keys can train in one bundle."""

    context: TrialContext

    def __call__(self, params: Mapping[str, Any]) -> str:
        try:
            spec: RunSpec = trial_spec(self.context, dict(params))
        except ValueError as error:  # a setting no run accepts: a bundle of its own, which fails as a trial would
            return f"invalid: {error} {sorted(params.items())!r}"
        return repr(bundle_key(spec).to_dict())


class BundleSearch(Searcher):
    """Bundles of up to ``k`` Optuna trials of one shape, ``num_samples`` trials in all."""

    def __init__(self, space: DefineBySpace, key: BundleKey, storage: StudyStorage, study_name: str,
                 sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner, k: int, num_samples: int,
                 points: list[dict[str, Any]], directions: list[str]) -> None:
        super().__init__()  # no metric of its own: each member tells the study itself
        self.space, self.key, self.storage, self.study_name = space, key, storage, study_name
        self.sampler, self.pruner, self.k, self.num_samples = sampler, pruner, k, num_samples
        self.directions = directions
        self._pool: list[tuple[int, dict[str, Any], str]] = []  # (trial number, params, shape) asked, not yet run
        self._asked = 0
        self._bundles: dict[str, list[int]] = {}  # Tune trial id -> its members' trial numbers
        self._study_obj: optuna.Study | None = None
        study = self._study()
        for point in points:  # the known-good starting points are the first trials asked
            study.enqueue_trial(point, skip_if_exists=True)

    def _study(self) -> optuna.Study:
        if self._study_obj is None:
            self._study_obj = optuna.create_study(study_name=self.study_name, storage=self.storage.open(),
                                                  sampler=self.sampler, pruner=self.pruner,
                                                  directions=self.directions, load_if_exists=True)
        return self._study_obj

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_study_obj"] = None  # reopened from its storage
        return state

    def _ask(self) -> None:
        """Ask the study for one more trial into the pool."""
        trial = self._study().ask()
        own = self.space(trial) or {}  # a point's own epochs and warm start: constants of its trial, as unfused
        params = {**trial.params, **own}
        self._pool.append((trial.number, params, self.key(params)))
        self._asked += 1

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next bundle: up to ``k`` trials of one shape; FINISHED once every trial was handed out."""
        while self._asked < self.num_samples and max(self._group_sizes().values(), default=0) < self.k:
            self._ask()
        if not self._pool:
            return Searcher.FINISHED
        sizes = self._group_sizes()
        shape = max(sizes, key=lambda s: (sizes[s], -min(n for n, _, key in self._pool if key == s)))
        chosen = [entry for entry in self._pool if entry[2] == shape][:self.k]
        self._pool = [entry for entry in self._pool if entry not in chosen]
        self._bundles[trial_id] = [number for number, _, _ in chosen]
        study = self._study()
        trials = {t.number: t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
        for member, (number, _, _) in enumerate(chosen):
            if number in trials:
                optuna.trial.Trial(study, trials[number]._trial_id).set_user_attr(
                    TUNE_ID, member_trial_id(trial_id, member))
        return {"members": [{"number": number, "params": params} for number, params, _ in chosen]}

    def _group_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for _, _, shape in self._pool:
            sizes[shape] = sizes.get(shape, 0) + 1
        return sizes

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Fail the members a bundle that ended (crashed, or was stopped for good) left RUNNING in the study."""
        study = self._study()
        numbers = set(self._bundles.get(trial_id, ()))
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if trial.number in numbers:
                optuna.trial.Trial(study, trial._trial_id).set_user_attr(OUTCOME, str(Outcome.FAILED))
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def use_study(self, storage: StudyStorage) -> None:
        """Keep the study in ``storage`` from now on (a moved or copied experiment resumes with its own copy)."""
        self.storage, self._study_obj = storage, None

    def save(self, checkpoint_path: str) -> None:
        """The pool, the count of asked trials and the bundles handed out (the study keeps itself)."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"pool": self._pool, "asked": self._asked, "bundles": self._bundles}, f)

    def restore(self, checkpoint_path: str) -> None:
        """What :meth:`save` wrote."""
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)  # noqa: S301 - the experiment folder passed its integrity check before --resume
        self._pool, self._asked, self._bundles = state["pool"], state["asked"], state["bundles"]
