"""Processes that hammer one study journal (tests/optimise/test_journal.py, test_postgres.py).

Each runs in its own (spawned) process and opens the database through ``open_storage``, as
an optimiser worker would.
"""

import json
import random
import time
from pathlib import Path


def batch_sizes(writer: int, n_batches: int) -> list[int]:
    """The sizes of ``writer``'s batches (1-8 records, fixed by the writer's number)."""
    rng = random.Random(writer)
    return [rng.randint(1, 8) for _ in range(n_batches)]


def backend(url: str):
    """The journal table alone (its records here are not optuna's: no study is replayed from them)."""
    from emsim.optimise._journal import SQLJournalBackend
    from emsim.optimise._storage import journal_engine

    return SQLJournalBackend(journal_engine(url))


def write(url: str, writer: int, n_batches: int, start=None) -> None:
    """Append ``n_batches`` batches; every record names its writer, batch, place and batch size."""
    b = backend(url)
    if start is not None:
        start.wait()
    for k, n in enumerate(batch_sizes(writer, n_batches)):
        b.append_logs([{"w": writer, "b": k, "i": i, "n": n} for i in range(n)])
        # SQLite's lock is not fair: a writer appending back to back can take it again before a
        # waiting one wakes up. Optimiser workers evaluate between appends; so do these, briefly.
        time.sleep(0.002)


def write_forever(url: str, ready: str, pad: int) -> None:
    """Append batches of 50 large records until killed; touches ``ready`` after the first."""
    b = backend(url)
    k = 0
    while True:
        b.append_logs([{"w": 0, "b": k, "i": i, "n": 50, "pad": "x" * pad} for i in range(50)])
        if k == 0:
            Path(ready).touch()
        k += 1


def read(url: str, n_total: int, out: str, start=None, timeout_s: float = 120.0) -> None:
    """Read incrementally (each time from where it stopped) until ``n_total`` records; dump them to ``out``."""
    b = backend(url)
    if start is not None:
        start.wait()
    seen: list = []
    reads = 0
    t0 = time.monotonic()
    while len(seen) < n_total and time.monotonic() - t0 < timeout_s:
        seen.extend(b.read_logs(len(seen)))
        reads += 1
    Path(out).write_text(json.dumps({"seen": seen, "reads": reads}))


def concurrent_appends(url: str, folder: Path, n_writers: int = 3, n_batches: int = 150, n_readers: int = 2) -> dict:
    """Run writers and incremental readers at once on ``url`` and check the one total order.

    Checks that the journal is numbered densely, that every batch is stored whole and in one
    piece, that each writer's batches keep their order, and that every reader, reading a
    little at a time while the writers append, saw exactly the final journal (no record ever
    appeared before records it had already read). Returns counts for the caller to check.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    backend(url)  # create the table before the race (workers racing to create it are tested elsewhere)
    n_total = sum(sum(batch_sizes(w, n_batches)) for w in range(n_writers))
    outs = [folder / f"reader{r}.json" for r in range(n_readers)]
    start = ctx.Barrier(n_writers + n_readers)  # all begin together, after their (slow) imports
    procs = [ctx.Process(target=read, args=(url, n_total, str(o), start)) for o in outs]
    procs += [ctx.Process(target=write, args=(url, w, n_batches, start)) for w in range(n_writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0, p.exitcode
    final = backend(url).read_logs(0)
    assert len(final) == n_total
    where: dict = {}
    for pos, rec in enumerate(final):
        where.setdefault((rec["w"], rec["b"]), []).append((pos, rec["i"], rec["n"]))
    for (w, k), places in where.items():
        first = places[0][0]
        assert [(p, i) for p, i, _ in places] == [(first + i, i) for i in range(places[0][2])], (w, k)
    for w in range(n_writers):
        starts = [where[(w, k)][0][0] for k in range(n_batches)]
        assert starts == sorted(starts), w
    interleaved = sum(1 for a, b in zip(final, final[1:]) if a["w"] != b["w"])
    reads = []
    for o in outs:
        got = json.loads(o.read_text())
        assert got["seen"] == final
        reads.append(got["reads"])
    return {"records": n_total, "writer_switches": interleaved, "reads": reads}
