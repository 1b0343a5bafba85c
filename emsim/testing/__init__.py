"""Helpers for testing code that uses emsim (shipped with the package, like ``optuna.testing``).

Modules
-------
clock
    :class:`~emsim.testing.clock.ManualClock`, a clock that moves only when told to.
golden
    Canonical cases of the prediction pipeline and their stored results
    (``python -m emsim.testing.golden --update`` regenerates them).
"""
