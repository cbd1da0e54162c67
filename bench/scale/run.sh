#!/bin/bash
# The scale bench (S6/S7, issue 22) under the bench lock, so that no other benchmark runs at the same time.
# Arguments go to scale.py (python3 bench/scale/scale.py --help). Examples:
#   bash bench/scale/run.sh --sockets 20000 --servers 2 --clients 2 --hold 90
#   bash bench/scale/run.sh --sockets 19000 --servers 1 --clients 1 --hold 90
#   bash bench/scale/run.sh --sockets 100000 --servers 7 --clients 7 --hold 600 --s7
#   bash bench/scale/run.sh --server gevent --sockets 100000 --servers 7 --clients 7 --hold 120
# W4R_PY: the ws4redis venv (Django, redis-py, uWSGI); the clients need /tmp/bench-venvs/loadgen (picows, uvloop:
# bash bench/setup_anchors.sh).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$(dirname "$HERE")")"
W4R_PY="${W4R_PY:-$ROOT/.venv/bin/python}"
ulimit -n 20000
exec flock /tmp/ws4redis-bench.lock "$W4R_PY" "$HERE/scale.py" "$@"
