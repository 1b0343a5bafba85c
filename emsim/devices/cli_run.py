"""``emsim run`` and ``emsim log``: subcommands registered on the ``emsim`` parser by :func:`emsim.cli.build_parser`.

Exit codes of ``emsim run`` (same scheme as the rest of ``emsim``): 0 the program completed or
the operator stopped it; 1 the program was refused (invalid or unsafe: nothing was sent) or
the session ended in a device fault or an emergency stop; 2 usage error or unreadable input;
3 internal error; 128 + signal number after a clean stop on SIGINT (130) or SIGTERM (143).
"""

from __future__ import annotations

import argparse
import getpass
import math
import sys
from pathlib import Path

__all__ = ["register"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _speed_arg(value: str) -> float:
    if value.lower() in ("max", "inf"):
        return math.inf
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number > 0 or 'max' (got {value!r})") from None
    if not (speed > 0 and math.isfinite(speed)):
        raise argparse.ArgumentTypeError(f"speed out of range (got {value}; allowed > 0, or 'max')")
    return speed


def _operator_default() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment: the log says '-'
        return None


def cmd_run(args) -> int:
    from emsim import DISCLAIMER
    from emsim.cli import _exit_code, _load_inputs, _print_problems
    from emsim.devices.audit import AuditLog
    from emsim.devices.runner import SessionRunner, open_stimulator, parse_device_spec
    from emsim.errors import DeviceError, EmsimError, SafetyViolation

    print(DISCLAIMER, file=sys.stderr)
    audit = None
    try:
        kind, _ = parse_device_spec(args.device)
        program, patient = _load_inputs(args)
        log_path = args.log
        if log_path is None and kind != "sim":
            log_path = Path("emsim-audit.sqlite")  # a real device always leaves an audit trail
            print(f"emsim: audit log: {log_path} (use --log to choose)", file=sys.stderr)
        if log_path is not None:
            audit = AuditLog(log_path, operator=args.operator, device=args.device)
        stim = open_stimulator(args.device, speed=args.speed, audit=audit, operator=args.operator)
        runner = SessionRunner(stim, program, patient, session=args.session)
        try:
            result = runner.run()
        except SafetyViolation as exc:
            for line in exc.report.lines():
                print(f"emsim: {line}", file=sys.stderr)
            print(f"emsim: error: {args.program} refused for this patient on {stim.capabilities.device_id}; "
                  "nothing was sent to the device", file=sys.stderr)
            return EXIT_INVALID
    except DeviceError as exc:
        _print_problems(exc)
        return EXIT_USAGE if (exc.unreadable or exc.path in ("--device", "--speed")) else EXIT_INVALID
    except EmsimError as exc:
        _print_problems(exc)
        return _exit_code(exc)
    finally:
        if audit is not None:
            audit.close()

    _summary(stim, result, log_path)
    if result.emergency or result.last_error is not None:
        return EXIT_INVALID
    if result.signal is not None:
        return 128 + int(result.signal)
    return EXIT_OK


def _summary(stim, result, log_path) -> None:
    print(f"session ended: {result.stop_cause or result.state.value}"
          f"{' (' + result.last_error + ')' if result.last_error else ''}; "
          f"{result.program_s:.1f} s of the program in {result.elapsed_s:.1f} s of session time"
          f"{'; ' + str(result.extra['delivered_pulses']) + ' pulses delivered' if 'delivered_pulses' in result.extra else ''}")
    physiology = getattr(stim, "physiology_result", None)
    if physiology is not None and result.extra.get("delivered_pulses"):
        from emsim.devices.simulated import model_name, peak_forces

        res = physiology()
        if res is not None and hasattr(res, "force_n"):
            text = ", ".join(f"{c} {v:.0f} N" for c, v in peak_forces(res, stim.plan.channel_ids).items())
            print(f"predicted peak force ({model_name(res)}): {text}")
            scalars = getattr(res, "scalars", None)
            if scalars:
                print(f"predicted peak contraction {scalars['peak_mvc_pct']:.1f} % of the region's maximum "
                      f"evoked force, peak discomfort NRS {scalars['peak_discomfort_nrs']:.1f}, fatigue "
                      f"{scalars['fatigue_decline_pct']:.0f} % decline")
    if log_path is not None:
        print(f"audit log: {log_path} (emsim log show {log_path})")


def cmd_log_show(args) -> int:
    from emsim.cli import _exit_code, _print_problems
    from emsim.devices.audit import format_session, read_events, read_sessions
    from emsim.errors import EmsimError

    try:
        sessions = read_sessions(args.file)
        if not sessions:
            print(f"{args.file}: no sessions")
            return EXIT_OK
        if args.session == "all":
            chosen = sessions
        elif args.session is None:
            chosen = sessions[-1:]
        else:
            chosen = [s for s in sessions if str(s["id"]) == args.session]
            if not chosen:
                print(f"emsim: usage error: no session {args.session} in {args.file} "
                      f"(sessions: {', '.join(str(s['id']) for s in sessions)})", file=sys.stderr)
                return EXIT_USAGE
        for k, s in enumerate(chosen):
            if k:
                print()
            lines = format_session(s, read_events(args.file, s["id"]),
                                   limit_frames=None if args.all else args.frames)
            print("\n".join(lines))
    except EmsimError as exc:
        _print_problems(exc)
        return _exit_code(exc)
    return EXIT_OK


def register(sub) -> None:
    """Add this module's subcommands to the ``emsim`` sub-parser collection ``sub``."""
    from emsim import DISCLAIMER
    from emsim.cli import EPILOG, _session_arg

    p = sub.add_parser(
        "run", help="deliver a validated program on a stimulator (simulated or real)",
        description="Validate a program for a patient and a device, then deliver one session: progress and "
                    "live current on standard error; with a terminal on standard input, keys control it (space "
                    "pause/resume, +/- intensity, 1-9 channel, 0 all, s stop, e or Esc emergency stop); without "
                    "one it runs to the end and stops cleanly on SIGINT/SIGTERM. Exit 0 completed or stopped by "
                    "the operator, 1 refused or ended by a fault/emergency stop, 2 usage, 130/143 stopped by a "
                    f"signal. {DISCLAIMER}", epilog=EPILOG)
    p.add_argument("program", type=Path)
    p.add_argument("--patient", type=Path, required=True, help="patient file (thresholds, contraindications)")
    p.add_argument("--device", required=True,
                   help="sim (simulated, generic envelope), sim:rehastim2 / sim:p24 (simulated with that device's "
                        "envelope), sciencemode2:PORT or sciencemode4:PORT")
    p.add_argument("--log", type=Path, help="audit log (SQLite; appended). Default for real devices: "
                                            "emsim-audit.sqlite; none for sim")
    p.add_argument("--speed", type=_speed_arg, default=1.0,
                   help="simulated seconds per second (sim only; 'max' = as fast as possible)")
    p.add_argument("--session", type=_session_arg, default=1, help="session number (default 1)")
    p.add_argument("--operator", default=_operator_default(), help="operator name for the audit log")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("log", help="read a session audit log",
                       description=f"Read an emsim audit log. {DISCLAIMER}", epilog=EPILOG)
    logsub = p.add_subparsers(dest="log_command", metavar="ACTION", parser_class=sub._parser_class)
    q = logsub.add_parser("show", help="print a session readably",
                          description=f"Print a session of an audit log: header, then every event. {DISCLAIMER}",
                          epilog=EPILOG)
    q.add_argument("file", type=Path)
    q.add_argument("--session", help="session id, or 'all' (default: the last session)")
    q.add_argument("--frames", type=int, default=200, help="show at most this many tx/rx frames (default 200)")
    q.add_argument("--all", action="store_true", help="show every frame")
    q.set_defaults(func=cmd_log_show)
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_USAGE)[1])
