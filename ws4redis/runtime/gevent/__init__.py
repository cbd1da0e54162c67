"""The gevent runtime: the per-process hub (one Redis pub/sub connection), the per-socket driver of the session core,
and the wsproto transport it writes through. Used by uWSGI, the gevent server and the threaded runserver.
"""
