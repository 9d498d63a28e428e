"""``bridgectl``: pair and inspect nodes through the daemon's control socket.

It imports nothing heavy (no bleak, no aiocoap), so ``bridgectl --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridgectl", description="Pair and inspect the nodes of a running bridged."
    )
    parser.add_argument("--version", action="version", version=f"bridgectl {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("bridgectl: no commands yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
