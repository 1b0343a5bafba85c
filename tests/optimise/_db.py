"""Reading a study's SQLite file directly in tests: integrity, and trials per state."""

import sqlite3
from pathlib import Path


def trial_counts(db: Path) -> dict:
    """``{state: count}`` of the trials in ``db``, after checking the file's integrity."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    finally:
        con.close()
