"""Where trials run and where an experiment lives: joining Ray, sizing trials, shared storage, locks, integrity.

:mod:`.connect` starts a local Ray or joins a cluster (bounded in time); :mod:`.resources` and
:mod:`.packing` size each trial (CPUs, GPU shares, data-parallel workers) and check it fits;
:mod:`.storage` keeps the Optuna study where every node can use it; :mod:`.lock` lets one search
write an experiment; :mod:`.integrity` signs what ``--resume`` unpickles.
"""
