"""Stimulator devices: the stimulator interface, the simulated stimulator and real-device support.

Research use only: emsim has no clinical clearance.

Subpackages
-----------
sciencemode
    Pure-function codecs for the Hasomed ScienceMode 1, 2 and 4 serial protocols.
"""
