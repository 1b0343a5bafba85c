"""Device emulators: the device side of the ScienceMode protocols on a pseudo-terminal.

The real drivers open the emulator's port with pyserial and the device's own serial settings,
so driver tests run over a real serial line without hardware (reference
``devices_and_safety.md`` §5.2). Each emulator models the device's state machine, watchdog,
parameter checks, error replies and latency, accepts injected faults, and records what it
would have delivered (:class:`~emsim.devices.emulator.timeline.Timeline`).
"""

from emsim.devices.emulator.sm2 import ScienceMode2Emulator
from emsim.devices.emulator.sm4 import ScienceMode4Emulator
from emsim.devices.emulator.timeline import ChannelOutput, Segment, Timeline, TimelineEvent

__all__ = ["ScienceMode2Emulator", "ScienceMode4Emulator", "Timeline", "Segment", "ChannelOutput", "TimelineEvent"]
