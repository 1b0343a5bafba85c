"""Checkpoint parts, the final tidy table (Parquet), NetCDF for grids, atomic writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from emsim.study._errors import StudyError

__all__ = ["Layout", "check_writable"]

RESULTS, PROVENANCE, NETCDF, PARTS = "results.parquet", "provenance.json", "results.nc", ".parts"


def check_writable(folder: Path) -> None:
    """Create ``folder`` and prove it can be written (before any work is done)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".emsim-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StudyError("output folder is not writable", path="--out", value=str(folder),
                         allowed=f"a writable folder ({exc.strerror or exc})") from None


class Layout:
    """Files of one study run below ``<out>/<study name>/``.

    Finished batches go to ``.parts/part-NNNNNN.parquet`` (written to a temporary name, then
    renamed, so a killed run never leaves a half part); the complete results appear only once
    every batch is done, and ``provenance.json`` (with ``"complete": true``) is written last.
    """

    def __init__(self, out: Path, name: str):
        self.dir = Path(out) / name
        self.parts = self.dir / PARTS
        self.results = self.dir / RESULTS
        self.provenance = self.dir / PROVENANCE
        self.netcdf = self.dir / NETCDF

    def part(self, i: int) -> Path:
        return self.parts / f"part-{i:06d}.parquet"

    def finished(self) -> dict | None:
        """The provenance of a complete run, or None."""
        try:
            doc = json.loads(self.provenance.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if doc.get("complete") and self.results.is_file() else None

    def start(self, fingerprint: str) -> set[int]:
        """Prepare a run; returns the batches already checkpointed by a run of the same study."""
        for f in (self.provenance, self.results, self.netcdf):  # stale complete files go first
            f.unlink(missing_ok=True)
        stamp = self.parts / "fingerprint"
        if self.parts.is_dir() and (not stamp.is_file() or stamp.read_text().strip() != fingerprint):
            shutil.rmtree(self.parts)  # parts of another study spec: never mixed in
        self.parts.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
        for tmp in self.parts.glob("*.tmp"):
            tmp.unlink()
        return {int(p.stem.split("-")[1]) for p in self.parts.glob("part-*.parquet")}

    def write_part(self, i: int, columns: dict) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tmp = self.part(i).with_suffix(".tmp")
        pq.write_table(pa.table(columns), tmp)
        os.replace(tmp, self.part(i))

    def merge(self, n_batches: int) -> int:
        """Stream the parts, in batch order, into the results table; returns its row count."""
        import pyarrow.parquet as pq

        tmp = self.results.with_suffix(".tmp")
        writer, rows = None, 0
        try:
            for i in range(n_batches):
                t = pq.read_table(self.part(i))
                if writer is None:
                    writer = pq.ParquetWriter(tmp, t.schema)
                writer.write_table(t.cast(writer.schema))
                rows += t.num_rows
        finally:
            if writer is not None:
                writer.close()
        os.replace(tmp, self.results)
        return rows

    def write_netcdf(self, dims: list[str], units: dict, provenance: dict) -> None:
        """The gridded results as an xarray Dataset (one variable per outcome)."""
        import pandas as pd

        df = pd.read_parquet(self.results).drop(columns=["row"])
        ds = df.set_index(dims).to_xarray()
        for name in ds.variables:
            if name in units:
                ds[name].attrs["units"] = units[name]
        ds.attrs.update({"study": provenance["study"], "emsim_version": provenance["emsim_version"],
                         "seed": provenance["seed"], "fingerprint": provenance["fingerprint"]})
        for name in dims:  # labels (object) become fixed strings NetCDF can hold
            if ds[name].dtype == object:
                ds[name] = ds[name].astype(str)
        tmp = self.netcdf.with_suffix(".tmp")
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, self.netcdf)

    def finish(self, provenance: dict) -> None:
        tmp = self.provenance.with_suffix(".tmp")
        tmp.write_text(json.dumps(provenance, indent=2, default=_json_default) + "\n", encoding="utf-8")
        os.replace(tmp, self.provenance)
        shutil.rmtree(self.parts, ignore_errors=True)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
