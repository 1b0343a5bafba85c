"""Where a batch of candidates is evaluated: in this process, or on a Dask cluster."""

from __future__ import annotations

from typing import Sequence

from emsim.errors import OptimiseError

__all__ = ["make_executor", "LocalExecutor", "DaskExecutor"]


class LocalExecutor:
    """Evaluate the batch here, in one vectorised call."""

    description = "local"

    def evaluate(self, problem, vectors: Sequence[dict]):
        return problem.evaluate(vectors)

    def close(self) -> None:
        pass


def _evaluate_chunk(problem, vectors):
    return problem.evaluate(vectors)


class DaskExecutor:
    """Split each batch into one chunk per worker and evaluate the chunks on Dask distributed.

    Parameters
    ----------
    workers : int
        Size of the local cluster (one single-threaded process each) when no scheduler is given.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``): use that cluster instead.
    """

    def __init__(self, workers: int = 2, scheduler: str | None = None):
        from distributed import Client

        from emsim._dask import local_cluster, warn_malloc_trim

        self._cluster = None
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="20s")
                warn_malloc_trim(self.client)
                self.description = f"dask scheduler {scheduler}"
            else:
                self._cluster = local_cluster(workers, dashboard_address=None)
                self.client = Client(self._cluster)
                self.description = f"dask local cluster, {workers} workers"
        except OSError as exc:
            self.close()
            raise OptimiseError(f"Dask scheduler cannot be reached ({exc})", path="scheduler", value=scheduler,
                                allowed="the address of a running dask scheduler, e.g. tcp://host:8786") from None
        self._problem_future = None
        self._problem_id = None

    def _n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def evaluate(self, problem, vectors: Sequence[dict]):
        if self._problem_id != id(problem):  # ship the problem once, not with every chunk
            self._problem_future = self.client.scatter(problem, broadcast=True)
            self._problem_id = id(problem)
        vectors = list(vectors)
        k = min(self._n_workers(), len(vectors))
        if k <= 1:
            return problem.evaluate(vectors) if not vectors else \
                self.client.submit(_evaluate_chunk, self._problem_future, vectors, pure=False).result()
        size = -(-len(vectors) // k)
        chunks = [vectors[i:i + size] for i in range(0, len(vectors), size)]
        futures = [self.client.submit(_evaluate_chunk, self._problem_future, c, pure=False) for c in chunks]
        return [ev for chunk in self.client.gather(futures) for ev in chunk]

    def close(self) -> None:
        for obj in (getattr(self, "client", None), self._cluster):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # shutting down: nothing useful to do with an error here
                    pass


def make_executor(workers: int = 1, scheduler: str | None = None):
    if not isinstance(workers, int) or workers < 1:
        raise OptimiseError("workers must be a whole number >= 1", path="workers", value=workers, allowed=">= 1")
    if scheduler or workers > 1:
        return DaskExecutor(workers, scheduler)
    return LocalExecutor()
