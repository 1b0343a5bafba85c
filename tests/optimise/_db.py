"""Reading a study database in tests: the SQLite file's integrity, studies, and trials per state."""

import json
import sqlite3
from collections import Counter
from pathlib import Path

from optuna.trial import TrialState

from emsim.optimise._journal import JOURNAL_TABLE
from emsim.optimise._storage import close_storage, open_storage


def tables(db: Path) -> set:
    """Table names in the SQLite file ``db``, after checking the file's integrity."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()


def studies(url: str) -> dict:
    """``{study name: [trial states]}`` of the database at ``url``, whatever its layout."""
    storage = open_storage(url)
    try:
        return {s.study_name: [t.state.name for t in storage.get_all_trials(s._study_id, deepcopy=False)]
                for s in storage.get_all_studies()}
    finally:
        close_storage(storage)


def n_complete_now(db: Path) -> int:
    """Completed trials in the SQLite file ``db`` of a running optimiser: a quick read, no replay, no lock."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        records = con.execute(f"SELECT record FROM {JOURNAL_TABLE}").fetchall()
    finally:
        con.close()
    return sum(1 for (r,) in records if json.loads(r).get("state") == TrialState.COMPLETE)


def trial_counts(db: Path) -> dict:
    """``{state: count}`` of the trials in the SQLite file ``db``, after checking its integrity."""
    tables(db)
    return dict(Counter(s for states in studies(f"sqlite:///{db}").values() for s in states))
