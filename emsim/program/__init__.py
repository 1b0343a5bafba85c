"""The program format, its compiler and device quantisation.

>>> from emsim.program import load, compile
>>> train = compile(load("models/programs/paraspinal_strengthening.json"))  # doctest: +SKIP
"""

from emsim.program.model import FORMAT, Program
from emsim.program.compile import Block, PulseTrain, compile  # noqa: A004
from emsim.program.io import check_consistency, dumps, from_dict, load, loads, program_schema, save

__all__ = ["FORMAT", "Program", "PulseTrain", "Block", "compile", "load", "loads", "dumps", "save", "from_dict",
           "check_consistency", "program_schema"]
