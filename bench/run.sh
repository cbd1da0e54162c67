#!/usr/bin/env bash
# ws4redis benchmark: S1-S4 against ws4redis (uWSGI, 1 and 2 workers), the bare transport loop (the ceiling) and the
# anchors (django-websocket-redis 0.6, Channels 4), in ONE run on this machine; prints one table with ratios.
#
#   bash bench/run.sh                                   # defaults below, ~10 min
#   TARGETS="ws4redis-1w bare-1w" SCENARIOS="S1 S4" bash bench/run.sh
#   TARGETS="ws4redis-1w bare-1w" SCENARIOS="S5" bash bench/run.sh  # 1,000 subscribers, 500 msgs burst (not in S1-S4)
#   RUNS=3 bash bench/run.sh                            # medians of 3
#
# Targets (TARGETS, in this order by default):
#   ws4redis-gevent-1w          this repository on its gevent + wsproto transport (manage.py runwebsocket)
#   ws4redis-1w / ws4redis-2w   this repository, ws4redis.wsgi:application on uWSGI --http-socket, --gevent,
#                               1 or 2 workers, Python from $W4R_PY (default /work/main/.venv or ./.venv)
#   bare-1w / bare-2w           bench/apps/bare/bare_app.py: uWSGI + gevent, no Redis, no Django (S1, S2, S4);
#                               one uwsgi.websocket_send per message per socket: THE ceiling of the ratios
#   bare-frames-1w              the same with BARE_FRAMES=1: each message framed once, one sendall per wake-up
#                               (batched, as ws4redis writes; not the reference of the ratios)
#   dwr06-1w / dwr06-4w         django-websocket-redis 0.6.0 as in ../shared/bench (uWSGI --http router;
#                               4 workers, S2: 12 workers, because of its fd-1024 select() limit)
#   channels-{core,pubsub}-{uvicorn,daphne}   Channels 4.3 + channels_redis 4.3
#   ws4redis-asgi-uvicorn       this repository's ASGI application (bench/apps/ws4redis_bench/benchproj/asgi.py:
#                               ws4redis.asgi.get_asgi_application()) on $W4R_BIN/uvicorn, one worker, the uvicorn
#                               flags of channels-*-uvicorn (--loop uvloop --http httptools --ws websockets-sansio)
#   bare-asgi-uvicorn           bench/apps/bare_asgi/bare_asgi_app.py on the same uvicorn and flags: no Redis, no
#                               Django (S1, S2, S4); THE ceiling of ws4redis-asgi-uvicorn
#   ws4redis-asgi-granian       the two above on $W4R_BIN/granian (--interface asgi --workers 1 --loop uvloop):
#   bare-asgi-granian           another ASGI server's idle socket and fan-out, side by side
# Anchors need the venvs of bench/setup_anchors.sh (under $VENVS, default /tmp/bench-venvs); a missing venv skips them.
# Scenarios: S1 fan-out (1,000 sockets, 200 msgs at 50/s), S2 idle (5,000 sockets, hold 5 s), S3 targeted (1,000 user
# channels, 1 msg each), S4 burst (100 sockets, 5,000 msgs as fast as possible). S2 for ws4redis uses authenticated
# sockets (?subscribe-broadcast&uid=u{i}); S2u (opt-in) makes each of them also subscribe-user (5,000 Redis channels).
#
# Load generator: $VENVS/loadgen (picows client, as the shared harness) when present, else $W4R_PY with the
# dependency-free raw asyncio client (CLIENT=raw). Every server is started fresh per run on 127.0.0.1:$PORT and stopped
# by pid; the bench Redis (127.0.0.1:$REDIS_PORT, default 6391) is FLUSHALLed before each run: it must be a bench-only
# instance (started and stopped here if none answers).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
VENVS="${VENVS:-/tmp/bench-venvs}"
W4R_PY="${W4R_PY:-$ROOT/.venv/bin/python}"
REDIS_PORT="${REDIS_PORT:-6391}"
PORT="${PORT:-8111}"
BARE_CONTROL_PORT="${BARE_CONTROL_PORT:-8190}"
RUNS="${RUNS:-1}"
TARGETS="${TARGETS:-ws4redis-1w ws4redis-2w ws4redis-gevent-1w bare-1w bare-2w bare-frames-1w dwr06-4w channels-pubsub-uvicorn channels-core-uvicorn}"
SCENARIOS="${SCENARIOS:-S1 S2 S3 S4}"
GEVENT="${GEVENT:-1100}"
GEVENT_S2="${GEVENT_S2:-5100}"
S2_CONNS="${S2_CONNS:-5000}"
MAX_SECONDS="${MAX_SECONDS:-60}"
UVICORN_WS="${UVICORN_WS:-websockets-sansio}"  # --ws of ws4redis-asgi-uvicorn and bare-asgi-uvicorn (the anchor's)
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="${OUT:-/tmp/ws4redis-bench/run-$STAMP.jsonl}"
LOGDIR="${LOGDIR:-/tmp/ws4redis-bench/logs-$STAMP}"
mkdir -p "$(dirname "$OUT")" "$LOGDIR"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export BENCH_REDIS_PORT="$REDIS_PORT"
W4R_BIN="$(dirname "$W4R_PY")"

if [ -z "${CLIENT:-}" ]; then
  if [ -x "$VENVS/loadgen/bin/python" ]; then CLIENT=picows; else CLIENT=raw; fi
fi
if [ "$CLIENT" = raw ]; then LG_PY="$W4R_PY"; else LG_PY="$VENVS/loadgen/bin/python"; fi
LG="$LG_PY $HERE/loadgen.py"

# ---------------------------------------------------------------- redis
REDIS_STARTED_PID=""
if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  REDIS_PID="$(redis-cli -p "$REDIS_PORT" info server | awk -F: '/^process_id/{print $2}' | tr -d '\r')"
else
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --maxclients 20000 \
    --daemonize yes --pidfile "$LOGDIR/redis.pid" --logfile "$LOGDIR/redis.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS_PID="$(cat "$LOGDIR/redis.pid")"
  REDIS_STARTED_PID="$REDIS_PID"
fi
echo "redis pid $REDIS_PID on 127.0.0.1:$REDIS_PORT; client $CLIENT; results -> $OUT; logs -> $LOGDIR" >&2

SERVER_PID=""
descendants() { local p="$1"; echo "$p"; for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do descendants "$c"; done; }
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  local all; all="$(descendants "$SERVER_PID")"
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  for p in $all; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}
# Redis is waited for: a run started right after this one must not find it still answering while it shuts down.
cleanup() {
  stop_server
  if [ -n "$REDIS_STARTED_PID" ] && kill -TERM "$REDIS_STARTED_PID" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$REDIS_STARTED_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# supports TARGET SCENARIO -> 0 when the target runs that scenario and its venv exists
supports() {
  case "$1" in
    bare-asgi-uvicorn) case "$2" in S3|S2u) return 1;; esac; [ -x "$W4R_BIN/uvicorn" ] ;;
    ws4redis-asgi-uvicorn) [ -x "$W4R_BIN/uvicorn" ] ;;
    bare-asgi-granian) case "$2" in S3|S2u) return 1;; esac; [ -x "$W4R_BIN/granian" ] ;;
    ws4redis-asgi-granian) [ -x "$W4R_BIN/granian" ] ;;
    bare-*) case "$2" in S3|S2u) return 1;; esac; [ -x "$W4R_BIN/uwsgi" ] ;;
    ws4redis-*) [ -x "$W4R_BIN/uwsgi" ] ;;
    dwr06-*) [ "$2" != S2u ] && [ -x "$VENVS/ws4redis/bin/uwsgi" ] ;;
    channels-*) [ "$2" != S2u ] && [ -x "$VENVS/channels/bin/python" ] ;;
    *) return 1 ;;
  esac
}

# ws4redis_urls: the URLs and publisher of a ws4redis target (either transport), for start_server
ws4redis_urls() {
  URL_BCAST="ws://127.0.0.1:$PORT/ws/bench?subscribe-broadcast"
  URL_USER="ws://127.0.0.1:$PORT/ws/bench?subscribe-user&uid={uid}"
  URL_IDLE="ws://127.0.0.1:$PORT/ws/bench?subscribe-broadcast&uid=u{i}"
  [ "$scen" = S2u ] && URL_IDLE="ws://127.0.0.1:$PORT/ws/bench?subscribe-broadcast&subscribe-user&uid=u{i}"
  PUB="env PYTHONPATH=$ROOT $W4R_PY $HERE/publisher.py --backend ws4redis-next --facility bench"
}

# start_server TARGET SCENARIO LOG -> SERVER_PID, URL_BCAST, URL_USER, URL_IDLE, PUB
start_server() {
  local target="$1" scen="$2" log="$3" cores="$GEVENT" procs
  case "$scen" in S2|S2u) cores="$GEVENT_S2";; esac
  case "$target" in
    ws4redis-asgi-uvicorn)
      # The same uvicorn flags as channels-*-uvicorn; ws4redis' own lifespan sets Django and the hub up at startup.
      # PROFILE=file: the server runs under cProfile (bench/profile_uvicorn.py), written to file.SCENARIO when it
      # stops; the figures of such a run are the profiled server's, not comparable with the others.
      local uvicorn=("$W4R_BIN/uvicorn")
      [ -n "${PROFILE:-}" ] && uvicorn=("$W4R_PY" "$HERE/profile_uvicorn.py" "$PROFILE.$scen")
      ( cd "$HERE/apps/ws4redis_bench" && DJANGO_SETTINGS_MODULE=benchproj.settings \
          PYTHONPATH="$ROOT:$HERE/apps/ws4redis_bench" exec "${uvicorn[@]}" \
          benchproj.asgi:application --host 127.0.0.1 --port "$PORT" --loop uvloop --http httptools \
          --ws "$UVICORN_WS" --no-access-log --log-level warning --backlog 2048 ) >"$log" 2>&1 &
      SERVER_PID=$!
      ws4redis_urls
      ;;
    ws4redis-asgi-granian|bare-asgi-granian)
      # granian (Rust HTTP and websockets; one worker process under its supervisor: RSS counts both), uvloop.
      local app="benchproj.asgi:application" dir="$HERE/apps/ws4redis_bench"
      [ "$target" = bare-asgi-granian ] && app="bare_asgi_app:application" dir="$HERE/apps/bare_asgi"
      ( cd "$dir" && DJANGO_SETTINGS_MODULE=benchproj.settings BARE_CONTROL_PORT="$BARE_CONTROL_PORT" \
          PYTHONPATH="$ROOT:$dir" exec "$W4R_BIN/granian" --interface asgi --host 127.0.0.1 --port "$PORT" \
          --workers 1 --loop uvloop --log-level warning --backlog 2048 "$app" ) >"$log" 2>&1 &
      SERVER_PID=$!
      if [ "$target" = bare-asgi-granian ]; then
        URL_BCAST="ws://127.0.0.1:$PORT/ws/bench"; URL_USER=""; URL_IDLE="$URL_BCAST"
        PUB="env BARE_CONTROL_PORT=$BARE_CONTROL_PORT BARE_WORKERS=1 $W4R_PY $HERE/publisher.py --backend bare"
      else
        ws4redis_urls
      fi
      ;;
    bare-asgi-uvicorn)
      ( cd "$HERE/apps/bare_asgi" && BARE_CONTROL_PORT="$BARE_CONTROL_PORT" exec "$W4R_BIN/uvicorn" \
          bare_asgi_app:application --host 127.0.0.1 --port "$PORT" --loop uvloop --http httptools \
          --ws "$UVICORN_WS" --no-access-log --log-level warning --backlog 2048 ) >"$log" 2>&1 &
      SERVER_PID=$!
      URL_BCAST="ws://127.0.0.1:$PORT/ws/bench"; URL_USER=""; URL_IDLE="$URL_BCAST"
      PUB="env BARE_CONTROL_PORT=$BARE_CONTROL_PORT BARE_WORKERS=1 $W4R_PY $HERE/publisher.py --backend bare"
      ;;
    ws4redis-*|bare-*)
      procs="${target##*-}"; procs="${procs%w}"
      local frames=0; [ "${target#bare-frames}" != "$target" ] && frames=1
      if [ "${target#ws4redis-gevent}" != "$target" ]; then
        # The gevent + wsproto transport: manage.py runwebsocket, websockets only (no uWSGI).
        ( cd "$HERE/apps/ws4redis_bench" && DJANGO_SETTINGS_MODULE=benchproj.settings \
            PYTHONPATH="$ROOT:$HERE/apps/ws4redis_bench" exec "$W4R_PY" -m django runwebsocket \
            --bind "127.0.0.1:$PORT" --workers "$procs" ) >"$log" 2>&1 &
        SERVER_PID=$!
        ws4redis_urls
      elif [ "${target%%-*}" = ws4redis ]; then
        local module=ws4redis.wsgi:application
        ( cd "$HERE/apps/ws4redis_bench" && DJANGO_SETTINGS_MODULE=benchproj.settings \
            PYTHONPATH="$ROOT:$HERE/apps/ws4redis_bench" exec "$W4R_BIN/uwsgi" \
            --http-socket "127.0.0.1:$PORT" --module "$module" --need-app \
            --gevent "$cores" --gevent-early-monkey-patch --processes "$procs" --master --die-on-term \
            --disable-logging --max-fd 20000 --listen 1024 ) >"$log" 2>&1 &
        SERVER_PID=$!
        ws4redis_urls
      else
        ( cd "$HERE/apps/bare" && BARE_CONTROL_PORT="$BARE_CONTROL_PORT" BARE_FRAMES=$frames exec "$W4R_BIN/uwsgi" \
            --http-socket "127.0.0.1:$PORT" --module bare_app:application --need-app \
            --gevent "$cores" --gevent-early-monkey-patch --processes "$procs" --master --die-on-term \
            --disable-logging --max-fd 20000 --listen 1024 ) >"$log" 2>&1 &
        SERVER_PID=$!
        URL_BCAST="ws://127.0.0.1:$PORT/ws/bench"; URL_USER=""; URL_IDLE="$URL_BCAST"
        PUB="env BARE_CONTROL_PORT=$BARE_CONTROL_PORT BARE_WORKERS=$procs $W4R_PY $HERE/publisher.py --backend bare"
      fi
      ;;
    dwr06-*)
      procs="${target##*-}"; procs="${procs%w}"
      if [ "$procs" != 1 ]; then cores=480; [ "$scen" = S2 ] && procs=12; fi
      ( cd "$HERE/apps/ws4redis_app" && exec "$VENVS/ws4redis/bin/uwsgi" \
          --http "127.0.0.1:$PORT" --gevent "$cores" --processes "$procs" --http-websockets \
          --module wsproj.wsgi_websocket --master --die-on-term --disable-logging --listen 1024 ) >"$log" 2>&1 &
      SERVER_PID=$!
      URL_BCAST="ws://127.0.0.1:$PORT/ws/bench?subscribe-broadcast"
      URL_USER="ws://127.0.0.1:$PORT/ws/bench?subscribe-user&uid={uid}"
      URL_IDLE="$URL_BCAST"
      PUB="$VENVS/ws4redis/bin/python $HERE/publisher.py --backend ws4redis --facility bench"
      ;;
    channels-*-daphne|channels-*-uvicorn)
      local layer="${target#channels-}"; layer="${layer%-*}"
      if [ "${target##*-}" = daphne ]; then
        ( cd "$HERE/apps/channels_app" && BENCH_LAYER="$layer" exec "$VENVS/channels/bin/daphne" \
            -b 127.0.0.1 -p "$PORT" -v 0 chproj.asgi:application ) >"$log" 2>&1 &
      else
        ( cd "$HERE/apps/channels_app" && BENCH_LAYER="$layer" exec "$VENVS/channels/bin/uvicorn" \
            chproj.asgi:application --host 127.0.0.1 --port "$PORT" --loop uvloop --http httptools \
            --ws websockets-sansio --no-access-log --log-level warning --backlog 2048 ) >"$log" 2>&1 &
      fi
      SERVER_PID=$!
      URL_BCAST="ws://127.0.0.1:$PORT/ws/bench"; URL_USER="ws://127.0.0.1:$PORT/ws/bench?uid={uid}"
      URL_IDLE="$URL_BCAST"
      PUB="env BENCH_LAYER=$layer $VENVS/channels/bin/python $HERE/publisher.py --backend channels --facility bench"
      ;;
    *) echo "unknown target $target" >&2; return 1 ;;
  esac
  wait_port "$PORT" || { echo "server $target did not start, see $log" >&2; tail -5 "$log" >&2; stop_server; return 1; }
  sleep 1
}

T0=$(date +%s)
# Scenario, then run, then target: the targets of one scenario run back to back, so a burst of CPU from another
# tenant of the machine hits them alike, and ratios compare figures measured minutes (not a quarter hour) apart.
for scen in $SCENARIOS; do
  for run in $(seq "$RUNS"); do
    for target in $TARGETS; do
      supports "$target" "$scen" || { [ "$run" = 1 ] && echo "-- skip $target $scen" >&2; continue; }
      redis-cli -p "$REDIS_PORT" flushall >/dev/null
      log="$LOGDIR/$target-$scen-$run.server.log"
      start_server "$target" "$scen" "$log" || continue
      common=(--client "$CLIENT" --server-pid "$SERVER_PID" --redis-pid "$REDIS_PID" --redis-port "$REDIS_PORT"
              --warmup --label "$target $scen" --out "$OUT" --max-seconds "$MAX_SECONDS")
      case "$scen" in
        S1) args=(--url "$URL_BCAST" --conns 1000 --messages 200 --rate 50) ;;
        S2|S2u) args=(--url "$URL_IDLE" --conns "$S2_CONNS" --messages 0 --hold 5) ;;
        S3) args=(--url "$URL_USER" --targeted --conns 1000 --messages 1000 --rate 0) ;;
        S4) args=(--url "$URL_BCAST" --conns 100 --messages 5000 --rate 0) ;;
        S5) args=(--url "$URL_BCAST" --conns 1000 --messages 500 --rate 0) ;;  # fan-out ceiling: 1,000 subscribers, burst
        *) echo "unknown scenario $scen" >&2; stop_server; continue ;;
      esac
      echo "== $target $scen run $run ($(( $(date +%s) - T0 )) s)" >&2
      timeout $(( MAX_SECONDS + 90 )) $LG "${args[@]}" "${common[@]}" --publisher "$PUB" \
        > "$LOGDIR/$target-$scen-$run.loadgen.json" 2> "$LOGDIR/$target-$scen-$run.loadgen.err" \
        || echo "   loadgen failed (rc=$?), see $LOGDIR/$target-$scen-$run.loadgen.err" >&2
      stop_server
      sleep 1
    done
  done
done

echo "== done in $(( $(date +%s) - T0 )) s; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$LG_PY" "$HERE/report.py" --summary "$OUT"
