"""Django integration: what is decided with Django's help (the handshake's request and middleware, the channel
policy, facility hooks, websocket views' API, signed streams, live HTML, model publishing, system checks, the metrics
view). Nothing here runs a socket: the runtimes do.
"""
