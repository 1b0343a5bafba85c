"""``emsim emulate``: subcommands registered on the ``emsim`` parser by :func:`emsim.cli.build_parser`.

``emsim emulate sciencemode2|sciencemode4 [--latency-ms N]`` starts a device emulator on a
pseudo-terminal, prints the port path to connect to (first line of standard output, so a
script can read it) and runs until Ctrl-C or SIGTERM, printing what the device does.
"""

from __future__ import annotations

import signal
import sys
import threading

from emsim._cli_args import bounded

__all__ = ["register", "cmd_emulate"]

_PROTOCOLS = ("sciencemode2", "sciencemode4")
_latency_arg = bounded("latency", 0, 10000, unit="ms")


def cmd_emulate(args) -> int:
    from emsim import DISCLAIMER
    from emsim.cli import EXIT_OK, _exit_code, _print_problems
    from emsim.errors import EmsimError

    try:
        if args.protocol == "sciencemode2":
            from emsim.devices.emulator.sm2 import DEFAULT_LATENCY_MS, ScienceMode2Emulator as Emulator
        else:
            from emsim.devices.emulator.sm4 import DEFAULT_LATENCY_MS, ScienceMode4Emulator as Emulator
        latency = DEFAULT_LATENCY_MS if args.latency_ms is None else args.latency_ms
        emu = Emulator(latency_ms=latency)
    except EmsimError as exc:
        _print_problems(exc)
        return _exit_code(exc)
    done = threading.Event()

    def _on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        done.set()

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        emu.start()
        s = emu.serial_settings
        print(emu.port, flush=True)
        print(f"emsim: {args.protocol} emulator on {emu.port} ({s['baudrate']} Bd, {s['bytesize']}"
              f"{s['parity']}{s['stopbits']}{', RTS/CTS' if s['rtscts'] else ''}); Ctrl-C to stop. "
              f"{DISCLAIMER}", file=sys.stderr, flush=True)
        seen = 0
        while not done.wait(0.2):
            events = emu.timeline.events
            for e in events[seen:len(events)]:
                if e.kind != "update" or args.verbose:
                    print(f"{emu.timeline.device_time(e.t):10.3f} s  {e.kind:<12} {e.detail}", flush=True)
            seen = len(events)
    finally:
        emu.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    n_on = len(emu.timeline.on_intervals())
    print(f"emsim: emulator stopped ({n_on} stimulation interval(s), {emu.rx_bytes} bytes received)",
          file=sys.stderr)
    return EXIT_OK


def register(sub) -> None:
    """Add this module's subcommands to the ``emsim`` sub-parser collection ``sub``."""
    from emsim.cli import EPILOG
    from emsim import DISCLAIMER

    p = sub.add_parser("emulate", help="run a ScienceMode device emulator on a pseudo-terminal",
                       description="Play the device side of a stimulator protocol on a pseudo-terminal so that "
                                   "drivers can be tested without hardware. Prints the port path to connect to "
                                   f"and runs until Ctrl-C or SIGTERM. {DISCLAIMER}", epilog=EPILOG)
    p.add_argument("protocol", choices=_PROTOCOLS)
    p.add_argument("--latency-ms", type=_latency_arg, default=None,
                   help="acknowledgement latency in ms (default: sciencemode2 10-24 ms uniform, "
                        "sciencemode4 1-3 ms)")
    p.add_argument("--verbose", action="store_true", help="also print every stimulation update")
    p.set_defaults(func=cmd_emulate)
