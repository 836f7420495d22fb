"""What a search shows a person: its live progress, a view of it, the status of another run, the leaderboard.

:mod:`.progress` holds the state (trials, counts, ETA) and its progress.json; :mod:`.view` draws
it (a live rich view, or a line per event) and names the search's phases; :mod:`.callback` is the
Tune callback that feeds it; :mod:`.status` answers ``--status``; :mod:`.leaderboard` ranks trials.
"""
