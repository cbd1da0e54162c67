"""The asyncio runtime: the per-loop hub on redis.asyncio (``hub``), its pub/sub links (``links``), and the per-socket
driver of the session core over ASGI messages: its entry points (``driver``), the socket (``connection``), the loop's
writer of idle sockets (``writer``), ASGI frames and the close (``frames``), where blocking code runs (``threads``) and
the kept messages read at open (``kept``). Used by every ASGI server.
"""
