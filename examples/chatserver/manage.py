#!/usr/bin/env python
"""Django's command-line utility for the chatserver demo (``python examples/chatserver/manage.py migrate``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).resolve().parent
    # The demo runs from a checkout: make both the demo package and the repository's ws4redis importable.
    for path in (here, here.parent.parent):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatserver.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
