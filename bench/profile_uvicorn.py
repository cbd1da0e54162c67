"""Run uvicorn under cProfile and write the profile when it stops (``PROFILE=file bash bench/run.sh``).

``python -m cProfile -m uvicorn`` writes nothing: uvicorn re-raises the SIGTERM it stopped on once it has shut down,
and the default handler ends the process before cProfile can write. Here the re-raised signal ends the process
through ``SystemExit``, after the profile is written.

Usage: python bench/profile_uvicorn.py OUT.prof [uvicorn arguments...]
"""

from __future__ import annotations

import cProfile
import signal
import sys
from typing import Any, NoReturn

import uvicorn.main


def _exit(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(0)


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    profile = cProfile.Profile()
    profile.enable()
    try:
        uvicorn.main.main(args)
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
