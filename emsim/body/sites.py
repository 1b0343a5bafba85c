"""The stimulation site catalogue (``models/sites/sites.json``).

Each site carries the anatomical ``region`` that the placement rules of :mod:`emsim.safety`
work on, and whether a channel may target it (``target``), may target it with care
(``caution``) or must never (``forbidden``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from emsim._data import load_data

__all__ = ["Site", "get_site", "site_ids", "target_site_ids", "SITES_FILE"]

SITES_FILE = "sites/sites.json"


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    region: str
    stimulation: str  # "target" | "caution" | "forbidden"
    sides: tuple[str, ...]
    source: str
    evidence: str
    note: str = ""


@lru_cache(maxsize=None)
def _catalogue() -> dict[str, Site]:
    data = load_data(SITES_FILE)
    return {s["id"]: Site(id=s["id"], name=s["name"], region=s["region"],
                          stimulation=s["stimulation"], sides=tuple(s["sides"]),
                          source=s["source"], evidence=s["evidence"], note=s.get("note", ""))
            for s in data["sites"]}


def site_ids() -> tuple[str, ...]:
    """All site ids in the catalogue, in catalogue order."""
    return tuple(_catalogue())


def target_site_ids() -> tuple[str, ...]:
    """Sites that a program may target without a placement warning."""
    return tuple(k for k, s in _catalogue().items() if s.stimulation == "target")


def get_site(site_id: str) -> Site:
    """Look up a site; ``KeyError`` if it is not in the catalogue."""
    return _catalogue()[site_id]
