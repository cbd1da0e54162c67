"""Packaging for ws4redis.

``pip install ws4redis`` installs everything the package imports (Django, redis-py, gevent, wsproto,
prometheus-client): with it, ``manage.py runwebsocket`` and ``runserver`` serve websockets. The extras are only what
is truly optional: ``uwsgi`` (the production server, compiled by pip), ``hiredis`` (a faster Redis reply parser),
``asgi`` (what ``ws4redis.asgi`` needs; the ASGI server itself is the deployment's choice) and ``testing`` (the
websocket client of ``ws4redis.testing``). ``wsproto`` stays as an empty extra so the install commands of earlier
releases (``pip install 'ws4redis[uwsgi,wsproto]'``) keep working.
"""

from setuptools import find_packages, setup

setup(
    name="ws4redis",
    version="1.0.0.dev0",
    description="Real-time websockets for Django on uWSGI and gevent, with Redis pub/sub as the broker",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["ws4redis", "ws4redis.*"]),
    include_package_data=True,
    package_data={"ws4redis": ["py.typed", "static/ws4redis/*", "static/js/*", "templates/ws4redis/*"]},
    install_requires=[
        "django>=4.2",
        "redis>=5.0",
        "gevent>=24.2",
        "wsproto>=1.2",  # every transport, uWSGI's included, carries the websocket with wsproto
        "prometheus-client>=0.17",
        "wsproto>=1.2",
    ],
    extras_require={
        "uwsgi": ["uwsgi>=2.0.20"],
        "hiredis": ["hiredis>=2.0"],
        "testing": ["websocket-client>=1.7"],
        # ws4redis.asgi: asgiref runs the handshake's sync middleware in a thread, redis.asyncio (in redis-py) is the
        # hub. No server: uvicorn, daphne, hypercorn or granian is the deployment's choice (docs/deployment.md).
        "asgi": ["asgiref>=3.7", "redis>=5.0"],
        "wsproto": [],  # now always installed; kept so old install commands still resolve
    },
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Internet :: WWW/HTTP",
    ],
)
