"""Management commands of ws4redis: ``runserver`` (with websockets) and ``runwebsocket``."""
