"""``emsim workbench``: serve the Panel workbench (``apps/``) on this machine.

Binds to 127.0.0.1 unless told otherwise. Any other address exposes patient data to the
network, so it needs Panel's built-in basic authentication (``--basic-auth``); without it the
command refuses to start. Panel and the app are imported only when the command runs, so the
rest of the CLI works without them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading

from emsim._cli_args import bounded

__all__ = ["register", "cmd_workbench", "LOCAL_ADDRESSES"]

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
_EXIT_OK, _EXIT_USAGE = 0, 2
_port = bounded("port", 0, 65535, integer=True)


def register(sub) -> None:
    """Add ``emsim workbench`` to the ``emsim`` sub-parser collection ``sub``."""
    from emsim import DISCLAIMER

    p = sub.add_parser(
        "workbench", help="open the design workbench in the browser",
        description="Serve the emsim workbench (patient, program design with live predictions, export). Serves on "
                    "127.0.0.1 by default; any other address requires --basic-auth. Exit 0 when stopped, 2 on "
                    f"usage errors. {DISCLAIMER}")
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=_port, default=5006, help="port (default 5006; 0 picks a free one)")
    p.add_argument("--show", action=argparse.BooleanOptionalAction, default=True,
                   help="open a browser tab (default --show)")
    p.add_argument("--basic-auth", default=os.environ.get("EMSIM_WORKBENCH_AUTH"),
                   help="Panel basic auth: a password, or a JSON file of user: password pairs (default from "
                        "$EMSIM_WORKBENCH_AUTH); required for a non-local --address")
    p.set_defaults(func=cmd_workbench)


def serve_kwargs(args) -> dict:
    """Keyword arguments for ``panel.serve``; raise ``SystemExit(2)`` for an unsafe address."""
    kwargs = dict(address=args.address, port=args.port, show=args.show)
    if args.address not in LOCAL_ADDRESSES:
        if not args.basic_auth:
            print(f"emsim workbench: refusing to serve on {args.address} without authentication; "
                  "pass --basic-auth (or set EMSIM_WORKBENCH_AUTH), or use --address 127.0.0.1", file=sys.stderr)
            raise SystemExit(_EXIT_USAGE)
        kwargs.update(basic_auth=args.basic_auth, cookie_secret=secrets.token_hex(32),
                      allow_websocket_origin=[f"{args.address}:{args.port}"])
    return kwargs


def cmd_workbench(args) -> int:
    kwargs = serve_kwargs(args)
    import panel as pn

    from apps.app import PAGE_TITLE, create_app
    from emsim import DISCLAIMER

    auth = "with basic authentication" if "basic_auth" in kwargs else "this machine only"
    print(f"emsim workbench on http://{args.address}:{args.port}/ ({auth}). {DISCLAIMER} Ctrl+C stops it.",
          file=sys.stderr)
    # The muscle kernels compile on first use (up to a minute on a fresh install); compiling
    # them while the page loads keeps that out of the first prediction.
    from emsim.physiology.muscle import warm_up

    threading.Thread(target=warm_up, name="emsim-warm-up", daemon=True).start()
    pn.serve(create_app, title=PAGE_TITLE, **kwargs)
    return _EXIT_OK
