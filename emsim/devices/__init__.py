"""Stimulator devices: the stimulator interface, the simulated stimulator and real-device support.

Research use only: emsim has no clinical clearance.

Modules
-------
base
    The one :class:`Stimulator` interface (template methods around device hooks), its
    :class:`Capabilities`, :class:`Status`, :class:`DeviceEvent` and :class:`DevicePlan`.
audit
    The SQLite session audit log (:class:`AuditLog`), durable record by record.
simulated
    :class:`SimulatedStimulator`: executes the compiled program on a clock, with fault injection.
runner
    The session runner behind ``emsim run``.

Subpackages
-----------
sciencemode
    Pure-function codecs for the Hasomed ScienceMode 1, 2 and 4 serial protocols, and drivers.
"""

from emsim.devices.audit import AuditLog
from emsim.devices.base import (
    Capabilities, ChannelStatus, DeviceEvent, DevicePlan, EventKind, Status, Stimulator, StimulatorState,
    program_hash,
)

__all__ = ["Stimulator", "Capabilities", "StimulatorState", "Status", "ChannelStatus", "DeviceEvent",
           "EventKind", "DevicePlan", "AuditLog", "program_hash", "SimulatedStimulator"]


def __getattr__(name):  # the simulator pulls in the physiology; import it only when asked
    if name == "SimulatedStimulator":
        from emsim.devices.simulated import SimulatedStimulator

        return SimulatedStimulator
    raise AttributeError(name)
