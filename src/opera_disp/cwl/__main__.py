"""``python -m opera_disp.cwl [--check] [ROOT]``: (re)write or check the CWL package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import CONFIG_NAME, generate


def main(argv: list[str] | None = None) -> int:
    """Write the generated files into ROOT (default: the current folder); 1 if ``--check``
    finds one out of date."""
    parser = argparse.ArgumentParser(prog="python -m opera_disp.cwl",
                                     description=f"Generate the OGC/CWL package from "
                                                 f"{CONFIG_NAME}.")
    parser.add_argument("root", nargs="?", type=Path, default=Path("."),
                        help=f"the folder holding {CONFIG_NAME}")
    parser.add_argument("--check", action="store_true",
                        help="only report files that differ from the generated ones")
    args = parser.parse_args(argv)
    if not (args.root / CONFIG_NAME).is_file():
        print(f"error: {args.root / CONFIG_NAME} not found; give the repository root",
              file=sys.stderr)
        return 2
    stale = []
    for name, text in generate(args.root).items():
        path = args.root / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    verb = "out of date" if args.check else "written"
    for name in stale:
        print(f"{name}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
