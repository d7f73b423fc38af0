"""The ``cmprep`` command (and ``python -m cmprep``): a status the quick path can answer
whole is answered without loading click (``cmprep/quick.py``); everything else goes to
the full command line."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:3] == ["batch", "status"]:  # any other command does not load the quick path
        from cmprep.quick import answer

        if answer(sys.argv[1:]):
            return
    from cmprep.cli import main as command_line

    command_line()


if __name__ == "__main__":
    main()
