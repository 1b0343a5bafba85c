"""Physiology models: evoked muscle force, fatigue and recovery (more layers to come).

:mod:`emsim.physiology.ding` holds the Ding-family CN–F force core (Ding 2003 with the Ding 2007
pulse-duration and Hmed 2018 amplitude terms). All functions take and return SI values.
"""
