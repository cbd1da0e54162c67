"""``manage.py ws4redis_drain``: close every websocket with 1001 and a jittered reconnect delay, then reload uWSGI.

uWSGI's graceful reload gives a worker's running requests no signal: its websockets would simply be cut when the
reload mercy runs out, and every client would come back at once. This command tells the hubs through Redis first,
so v2 clients get ``{"type": "shutdown", "reconnect_in": ms}`` with a delay spread over ``--window`` seconds, and then
(optionally) asks uWSGI's master for the graceful reload through its master FIFO.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ws4redis.broker.revocation import drain


class Command(BaseCommand):
    help = "Close every websocket with 1001 and a jittered reconnect delay; optionally reload uWSGI afterwards."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--window", type=float, default=10.0, help="spread reconnects over this many seconds")
        parser.add_argument("--instance", default=None, help="only this instance (WS4REDIS_INSTANCE or host name)")
        parser.add_argument("--reload-fifo", default=None, help="uWSGI master FIFO: write 'r' (graceful reload)")

    def handle(self, *args: Any, **options: Any) -> None:
        drain(window=options["window"], instance=options["instance"])
        self.stdout.write(f"ws4redis: drain requested (reconnects spread over {options['window']:.1f}s)")
        if options["reload_fifo"]:
            with open(options["reload_fifo"], "w") as fifo:
                fifo.write("r")
            self.stdout.write(f"ws4redis: graceful reload requested through {options['reload_fifo']}")
