"""Physiology models: evoked muscle force, fatigue and recovery (more layers to come).

:mod:`emsim.physiology.ding` holds the Ding-family CN–F force core (Ding 2003 with the Ding 2007
pulse-duration and Hmed 2018 amplitude terms). All functions take and return SI values.

:mod:`emsim.physiology.axon` simulates fibre classes in Brian2 and tabulates their thresholds
(``python -m emsim.physiology.axon tabulate``); :mod:`emsim.physiology.fibre_tables` reads the
tables without Brian2, and :mod:`emsim.physiology.recruitment` turns field + tables into motor
units and afferents recruited per pulse. :mod:`emsim.physiology.cutaneous` is the one afferent
model (skin current density → Aβ/Aδ/C activated) that recruitment and discomfort share.
"""
