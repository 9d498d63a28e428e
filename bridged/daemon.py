"""The ``bridged`` daemon entry point."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridged",
        description="LwM2M gateway daemon: exposes BLE and IEEE 802.15.4 sensor nodes "
        "to LwM2M servers.",
    )
    parser.add_argument(
        "-c", "--config", default="/etc/bridged/bridged.toml", help="configuration file (TOML)"
    )
    parser.add_argument("--version", action="version", version=f"bridged {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("bridged: the daemon's main loop is not built yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
