#!/bin/bash
# Idle sockets over time: one uWSGI worker of ws4redis, 2,000 idle authenticated sockets held 60 s, the worker's RSS
# before them and every 5-10 s after (S2 of run.sh measures only right after connecting). Loopback only; the server
# and its Redis are started here and stopped by pid.
#   bash bench/idle_rss.sh                          # settings as in run.sh: ping every 20 s, wake-up every 10 s
#   BENCH_PING_INTERVAL=1 bash bench/idle_rss.sh    # every socket pinged (and parsing its pong) every second
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
VENVS="${VENVS:-/tmp/bench-venvs}"
W4R_PY="${W4R_PY:-$ROOT/.venv/bin/python}"
PORT="${PORT:-8733}"
REDIS_PORT="${REDIS_PORT:-6392}"
CONNS="${CONNS:-2000}"
ulimit -n 20000
redis-server --port "$REDIS_PORT" --save "" --appendonly no >/dev/null 2>&1 & RP=$!
( cd "$HERE/apps/ws4redis_bench" && BENCH_REDIS_PORT="$REDIS_PORT" DJANGO_SETTINGS_MODULE=benchproj.settings \
    PYTHONPATH="$ROOT:$HERE/apps/ws4redis_bench" exec "$(dirname "$W4R_PY")/uwsgi" --http-socket "127.0.0.1:$PORT" \
    --module ws4redis.wsgi:application --need-app --gevent 3000 --gevent-early-monkey-patch --processes 1 --master \
    --die-on-term --disable-logging --max-fd 20000 --listen 1024 ) >/dev/null 2>&1 & SP=$!
trap 'kill $SP $RP 2>/dev/null; wait $SP $RP 2>/dev/null' EXIT
for _ in $(seq 50); do W=$(pgrep -P $SP | head -1); [ -n "$W" ] && [ -e "/proc/$W" ] && break; sleep 0.2; done
CLIENT=raw; LG_PY="$W4R_PY"
[ -x "$VENVS/loadgen/bin/python" ] && CLIENT=picows && LG_PY="$VENVS/loadgen/bin/python"
lg() {
  "$LG_PY" "$HERE/loadgen.py" --client "$CLIENT" --url "ws://127.0.0.1:$PORT/ws/bench?subscribe-broadcast&uid=u{i}" \
    --messages 0 --server-pid "$W" --label idle --out /dev/null \
    --publisher "env PYTHONPATH=$ROOT $W4R_PY $HERE/publisher.py --backend ws4redis-next --facility bench" "$@"
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$W/status"; }
BENCH_REDIS_PORT="$REDIS_PORT" lg --conns 300 --hold 0 >/dev/null 2>&1  # warm-up: Django, the hub, first requests
base=$(rss)
echo "worker RSS before: $base kB"
BENCH_REDIS_PORT="$REDIS_PORT" lg --conns "$CONNS" --hold 60 >/dev/null 2>&1 & LP=$!
for t in 5 10 15 20 30 40 50 60; do
  sleep 5; [ "$t" -gt 20 ] && sleep 5
  now=$(rss); awk -v t="$t" -v now="$now" -v base="$base" -v n="$CONNS" \
    'BEGIN { printf "t=%ss: %d kB, %.2f kB per socket\n", t, now, (now - base) / n }'
done
wait $LP
