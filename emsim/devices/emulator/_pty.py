"""Pseudo-terminal plumbing: the device end of a serial line without hardware.

The emulator owns the master end; the driver opens the slave end by path with pyserial and the
device's real serial settings. The slave is put in raw mode *before any byte flows*: a cooked
tty line discipline rewrites binary data (CR/LF translation, echo, signal characters), which
was observed to corrupt ScienceMode frames (reference ``devices_and_safety.md`` §5.2).
"""

from __future__ import annotations

import errno
import os
import pty
import select
import termios
import tty

from emsim.errors import DeviceError

__all__ = ["PtyLink"]


def _hung_up(exc: OSError) -> bool:
    """EIO (no process has the slave open) or EBADF (closed meanwhile): no data, not an error."""
    return exc.errno in (errno.EIO, errno.EBADF)


class PtyLink:
    """One pseudo-terminal pair; the emulator reads and writes the master end.

    The emulator keeps its own descriptor of the slave open so that the line survives a driver
    that closes and reopens the port (as a USB-serial adapter does), and so that unplugging is
    modelled by closing the *master* end: the driver then reads EIO, as after a USB unplug.

    Attributes
    ----------
    path : str
        Path of the slave end (``/dev/pts/N``) for the driver to open.
    """

    def __init__(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master: int | None = master
        self._slave: int | None = slave
        self.path = os.ttyname(slave)
        self.dropped_tx_bytes = 0

    @property
    def connected(self) -> bool:
        """False once :meth:`unplug` or :meth:`close` has run."""
        return self._master is not None

    def fileno(self) -> int:
        if self._master is None:
            raise DeviceError("emulator line is unplugged", path="emulator.port", value=self.path,
                              allowed="a connected line")
        return self._master

    def wait_readable(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for received bytes (or just sleep when unplugged)."""
        fd = self._master
        if fd is None:
            select.select([], [], [], max(timeout_s, 0.0))
            return False
        try:
            r, _, _ = select.select([fd], [], [], max(timeout_s, 0.0))
        except (OSError, ValueError):  # closed under our feet by unplug() from another thread
            return False
        return bool(r)

    def read(self) -> bytes:
        """Everything the driver has written so far (may be empty)."""
        fd = self._master
        if fd is None:
            return b""
        chunks = []
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError as exc:
                if _hung_up(exc):
                    break
                raise
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def write(self, data: bytes) -> int:
        """Send bytes towards the driver; returns how many went out.

        A UART transmits whether or not anybody listens, so bytes that do not fit in the
        pty buffer (nobody has read for a long time) are dropped and counted, never blocking
        the device loop.
        """
        fd = self._master
        if fd is None:
            self.dropped_tx_bytes += len(data)
            return 0
        sent = 0
        view = memoryview(data)
        while sent < len(data):
            try:
                sent += os.write(fd, view[sent:])
            except BlockingIOError:
                break
            except OSError as exc:
                if _hung_up(exc):
                    break
                raise
        self.dropped_tx_bytes += len(data) - sent
        return sent

    def normalise_speed(self) -> None:
        """Set the line speed back to 38 400 Bd if a host changed it (data flow is unaffected).

        A pty ignores the speed, but (observed on Linux 6.18 with glibc 2.36) once a host has
        set 460 800 Bd, a later ``tcsetattr`` that enables parity fails with EINVAL, so a driver
        could not reopen the port with the RehaStim's 8E1 settings after closing it (as it does
        after an emergency stop). Returning the speed to the pty default avoids that; a real
        serial port has no such quirk.
        """
        fd = self._slave
        if fd is None:
            return
        try:
            attr = termios.tcgetattr(fd)
            if attr[4] == termios.B38400 and attr[5] == termios.B38400:
                return
            attr[2] = (attr[2] & ~termios.CBAUD) | termios.B38400
            attr[4] = attr[5] = termios.B38400
            termios.tcsetattr(fd, termios.TCSANOW, attr)
        except (termios.error, OSError):
            pass

    def unplug(self) -> None:
        """Pull the cable: close the master end; the driver's next read or write fails."""
        fd, self._master = self._master, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Unplug and release the slave descriptor as well."""
        self.unplug()
        fd, self._slave = self._slave, None
        if fd is not None:
            os.close(fd)
