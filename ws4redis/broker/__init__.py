"""The Redis broker: channel names, the process's Redis pool, publishing, history streams, presence, quotas, reach
and revocation. Everything here talks to Redis (or names what lives there); nothing here knows a socket or a server.
"""
