"""``--time-budget``: a screen starts only the configurations its job's ETA says fit; settings and refusals."""

from __future__ import annotations

import time

from ray.tune.search import Searcher

from tuner.console.callback import LiveProgress
from tuner.console.eta import EtaPlan, TimeBudget
from tuner.console.progress import SearchProgress, from_json
from tuner.console.view import ViewKind
from tuner.search import SearchConfig
from tuner.search.budget import BudgetGate, PromoteEpochs, promote_epochs
from tuner.search.screening import screen_budget
from tuner.trials.outcome import Outcome

NOW = 1_000_000.0


def _screen(budget_s: float | None, minimum: int = 3, started: int = 2, later: tuple[int, int] = (2, 15),
            clock_s: float = 100.0) -> SearchProgress:
    """A screen of 12 three-epoch trials, ``started`` of them begun, each 10 s per epoch side by side on 2 slots,
    the first finished, ``clock_s`` into the run; its promote rung ``later`` and no export."""
    model = SearchProgress(12, 3, started=NOW - clock_s, run_started=NOW - clock_s,
                           eta_plan=EtaPlan(later=later, fixed_s=0.0), budget_s=budget_s, minimum=minimum)
    for number in range(started):
        trial = f"t{number}"
        for _ in range(3 if number == 0 else 1):
            model.record_epoch(trial, 10.0, 0.0, 2)
        view = model.view(trial)
        view.epoch = view.timed
        view.outcome = Outcome.FINISHED if number == 0 else Outcome.RUNNING
    return model


def test_without_a_budget_or_a_timed_epoch_every_configuration_is_still_to_come() -> None:
    assert _screen(None).affordable(now=NOW) == 10
    untimed = SearchProgress(12, 3, budget_s=1.0, minimum=3)
    assert untimed.affordable(now=NOW) == 12  # nothing measured: nothing to judge by


def test_the_budget_starts_as_many_as_the_eta_says_fit() -> None:
    # promote rung: 2 trials x 15 epochs x 10 s side by side = 150 s; trial t1 has 2 epochs left (20 s);
    # each new configuration adds 30 s over 2 slots (15 s), the last one alone at least its own 30 s
    tight = _screen(100.0 + 150 + 30)  # room for t1 and one more
    assert tight.affordable(now=NOW) == 1
    roomy = _screen(100.0 + 150 + 20 + 15 * 10)  # t1 and ten more side by side
    assert roomy.affordable(now=NOW) == 10
    middle = _screen(100.0 + 150 + 20 + 15 * 4)
    assert middle.affordable(now=NOW) == 4


def test_a_budget_too_small_still_starts_the_least_screen() -> None:
    model = _screen(1.0, minimum=3)
    assert model.affordable(now=NOW) == 1  # 2 started: one more reaches the least screen (promote 2 + 1)
    assert _screen(1.0, minimum=3, started=3).affordable(now=NOW) == 0
    assert model.counts()[Outcome.PENDING] == 1  # the view counts what will still run


def test_the_budget_goes_into_progress_json_and_back() -> None:
    model = _screen(300.0)
    again = from_json(model.to_json())
    assert (again.budget_s, again.minimum, again.run_started) == (300.0, 3, NOW - 100.0)
    assert again.affordable(now=NOW) == model.affordable(now=NOW)


class _Inner(Searcher):
    def __init__(self) -> None:
        super().__init__(metric="objective", mode="max")
        self.asked: list[str] = []

    def suggest(self, trial_id: str) -> dict:
        self.asked.append(trial_id)
        return {"lr": 0.1}


def _live(budget: TimeBudget | None) -> LiveProgress:
    return LiveProgress(None, 12, 3, view=ViewKind.LINES, started=time.time() - 100.0, eta=EtaPlan(later=(2, 15)),
                        budget=budget)


def test_the_gate_asks_its_searcher_until_the_budget_holds_no_more() -> None:
    inner = _Inner()
    live = _live(TimeBudget(1.0, 3))
    gate = BudgetGate(inner, live)
    assert gate.suggest("a") == {"lr": 0.1} and gate.suggest("b") == {"lr": 0.1}  # nothing timed yet
    for trial in ("a", "b"):
        live.progress().record_epoch(trial, 10.0, 0.0, 2)
        live.progress().view(trial).epoch = 1
    assert gate.suggest("c") == {"lr": 0.1}  # the least screen: one more than the promote rung's 2
    # "c" has not started yet (no view shows it): it counts as started all the same
    assert gate.suggest("d") == Searcher.FINISHED and gate.closed_at == 3
    assert gate.suggest("e") == Searcher.FINISHED and inner.asked == ["a", "b", "c"]

    roomy = BudgetGate(_Inner(), _live(TimeBudget(3600.0, 3)))
    for trial in "abcd":
        roomy.live.progress().record_epoch(trial, 10.0, 0.0, 2)
        assert roomy.suggest(trial) == {"lr": 0.1}


class _Bundles(_Inner):
    def suggest(self, trial_id: str) -> dict:
        self.asked.append(trial_id)
        return {"members": [{"params": {"lr": 0.1}}, {"params": {"lr": 0.2}}]}


def test_the_gate_counts_a_bundle_it_suggested_as_its_members_until_they_start() -> None:
    live = _live(TimeBudget(1.0, 5))  # the least screen: 5 configurations
    gate = BudgetGate(_Bundles(), live)
    for trial in ("a", "b"):
        live.progress().record_epoch(trial, 10.0, 0.0, 2)
    assert isinstance(gate.suggest("x"), dict) and gate.issued == {"x": ["x.0", "x.1"]}
    assert live.progress().affordable(unseen=2) == 1  # a, b and x's two members started: one more reaches 5
    assert isinstance(gate.suggest("y"), dict)
    live.progress().view("x.0")  # x started: its members are in the view
    assert gate.suggest("z") == Searcher.FINISHED and gate.closed_at == 5 and list(gate.issued) == ["y"]


def test_the_screen_budget_follows_the_flags_and_the_preset() -> None:
    from search_spaces.presets import PAPER, QUICK

    assert QUICK.time_budget == 13.0 and QUICK.screen == 12 and PAPER.time_budget is None
    budget = screen_budget(SearchConfig(), QUICK.time_budget, 12)
    assert budget == TimeBudget(13 * 60.0, 3)
    assert screen_budget(SearchConfig(time_budget=0), QUICK.time_budget, 12) is None  # --time-budget off
    assert screen_budget(SearchConfig(time_budget=30, promote=4), None, 12) == TimeBudget(1800.0, 5)
    assert screen_budget(SearchConfig(screen=3, promote=3), QUICK.time_budget, 3) == TimeBudget(780.0, 3)
    assert screen_budget(SearchConfig(), None, 12) is None


def test_the_promote_rung_trains_what_the_budget_leaves_after_the_screen() -> None:
    # after 100 s: the two finalists at 10 s an epoch side by side on 2 slots, no objective, no export
    promoted = ["t0", "t1"]
    assert promote_epochs(_screen(100.0 + 150), promoted, 15, 4, now=NOW) == PromoteEpochs(15, 10.0, 150.0)
    assert promote_epochs(_screen(100.0 + 189), promoted, 15, 4, now=NOW).epochs == 18  # a faster machine: longer
    assert promote_epochs(_screen(100.0 + 10_000), promoted, 15, 4, now=NOW).epochs == 30  # at most twice
    assert promote_epochs(_screen(100.0 + 60), promoted, 15, 4, now=NOW).epochs == 6  # a slower one: shorter
    assert promote_epochs(_screen(50.0), promoted, 15, 4, now=NOW).epochs == 4  # past the budget: the least
    slow = _screen(100.0 + 150)
    slow.record_epoch("t1", 30.0, 0.0, 2)  # t1's second epoch took 30 s: the rung goes at that pace
    # t0 has a slot of its own beside t1: its own 10 s, priced at the top of the pace spread (11.5 s), fit 13
    # epochs in the minutes t1 takes for 5
    assert promote_epochs(slow, promoted, 15, 4, now=NOW) == PromoteEpochs(5, 30.0, 150.0, (13, 5))
    three = _screen(100.0 + 150, started=3)
    three.record_epoch("t1", 30.0, 0.0, 2)
    assert promote_epochs(three, ["t0", "t1", "t2"], 15, 4, now=NOW).each == ()  # 3 on 2 slots: all at the slowest
    assert promote_epochs(slow, ["t0", "gone"], 15, 4, now=NOW).each == ()  # an untimed one: all at the slowest
    assert promote_epochs(slow, ["t0"], 15, 4, now=NOW).epochs == 15  # t0 alone, its own 10 s
    assert promote_epochs(slow, ["t0"], 15, 4, now=NOW, speedup=1.5).epochs == 22  # on both slots: 6.7 s an epoch
    assert promote_epochs(slow, ["gone"], 15, 4, now=NOW).epochs == 5  # unknown: the slowest screened trial's
    assert promote_epochs(_screen(None), promoted, 15, 4, now=NOW) == PromoteEpochs(15)  # no budget
    assert promote_epochs(None, promoted, 15, 4) == PromoteEpochs(15)
    untimed = SearchProgress(12, 3, budget_s=1.0, minimum=3)
    assert promote_epochs(untimed, promoted, 15, 4, now=NOW) == PromoteEpochs(15)


def test_the_promote_rung_counts_the_objectives_and_the_export() -> None:
    model = _screen(100.0 + 150)
    model.eta_plan = EtaPlan(later=(2, 15), fixed_s=5.0, objective_ratio=2.0, export_ratio=10.0)
    model.eval_alone_s, model.evals = 1.0, 1  # one epoch's scoring: 1 s alone
    # left: 150 - export (1 x 10 + 5) - 2 objectives (2 x 1 x 2) - 5 fixed = 126 s: 12 epochs of 10 s
    assert promote_epochs(model, ["t0", "t1"], 15, 4, now=NOW) == PromoteEpochs(12, 10.0, 126.0)


def test_the_promote_rung_prices_a_trials_start_up_once() -> None:
    model = _screen(100.0 + 150, started=1)
    model.trials["t0"].first_s = 25.0  # its first epoch carried 15 s of start-up: 25 + 10 + 10
    model.trials["t0"].seconds = 45.0
    sized = promote_epochs(model, ["t0"], 15, 4, now=NOW)
    assert sized == PromoteEpochs(13, 10.0, 135.0)  # (150 - 15) / 10, not 150 / 15 per epoch
