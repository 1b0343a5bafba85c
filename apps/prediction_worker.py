"""The worker process that predicts whole sessions for the workbench server.

A full 25-minute session takes a few hundred ms of CPU; run in the server process it would
hold the interpreter lock that the page's event loop and the next preview need. One spawned
worker per server runs it instead, so a preview can run on the other core meanwhile.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from emsim.body import loads_patient
from emsim.errors import EmsimError
from emsim.program import from_dict
from emsim.simulate import evaluate

__all__ = ["evaluate_elsewhere"]

_WORKER = None
_WORKER_LOCK = threading.Lock()


def evaluate_elsewhere(doc: dict, patient_json: str, device: str | None, session: int):
    """``evaluate`` of a program document in the worker process, waiting for the result.

    Raises
    ------
    EmsimError
        The program or patient was refused (the worker's message).
    """
    kind, value = _worker().submit(_evaluate_document, json.dumps(doc), patient_json, device, session).result()
    if kind == "error":
        raise EmsimError(value)
    return value


def _worker() -> ProcessPoolExecutor:
    """One worker process per server for full sessions (spawned: safe next to the server's threads)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_exit_with_parent, initargs=(os.getpid(),))
        return _WORKER


def _exit_with_parent(parent_pid: int) -> None:
    """In the worker: leave when the server is gone (a terminated server cannot shut its pool down)."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _evaluate_document(doc_json: str, patient_json: str, device: str, session: int):
    """``evaluate`` in the worker process; user errors come back as text (exceptions may not pickle)."""
    try:
        patient = loads_patient(patient_json) if patient_json else None
        return "ok", evaluate(from_dict(json.loads(doc_json)), patient, device=device, session=session)
    except EmsimError as exc:
        return "error", str(exc)
