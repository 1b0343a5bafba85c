"""The emsim workbench: a Panel app over the public ``emsim`` API.

Components are ``param``-declared (:mod:`apps.store` holds the data, the tab modules hold the
views), so their logic is tested without a browser. Serve it with ``emsim workbench``.

Research use only: emsim has no clinical clearance.
"""

from emsim import DISCLAIMER

__all__ = ["DISCLAIMER"]
