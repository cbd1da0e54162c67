"""The asyncio runtime: the per-loop hub on redis.asyncio, its pub/sub links, and the per-socket driver of the session
core over ASGI messages. Used by every ASGI server.
"""
