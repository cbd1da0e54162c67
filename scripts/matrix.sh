#!/usr/bin/env bash
# The support matrix the README claims, run by `make test` after the main suite (or alone: `make matrix`).
#
# Each supported Python (pyenv's ~/.pyenv/versions/3.1x.*) with the oldest and the newest supported Django series
# that this Python can run, on the core suites only. The main suite covers everything else on the default Python.
#
#   Python 3.10, 3.11: Django 4.2 and 5.2 (Django 6.0 needs Python 3.12)
#   Python 3.12:       Django 4.2 and 6.0 (4.2 supports 3.12 since 4.2.8)
#   Python 3.13:       Django 5.2 and 6.0 (4.2 does not support 3.13; 5.2 is the oldest supported series that does)
#
# With the oldest Django, redis-py is pinned to its oldest supported series (5.0), elsewhere it is the newest: a
# name that only newer redis-py releases have (redis.backoff.ExponentialWithJitterBackoff, 5.3) broke 5.0-5.2 before.
#
# Each combination gets a venv under .venv/matrix/ holding only `pip install ws4redis[uwsgi,hiredis]` (the
# checkout's wheel, so install_requires is exercised too) plus the test tools; the venvs are kept and reused while
# setup.py and this script are unchanged, and pip's cache keeps the wheels (uWSGI is compiled once per Python, about
# a minute, then comes from the cache). Tests run from the checkout, whose ws4redis comes first on sys.path.
#
# A missing interpreter fails the matrix loudly: install it with `pyenv install 3.1x` (or set PYENV_ROOT).
# Environment: WS4REDIS_MATRIX_JOBS (parallel combinations, default 2), WS4REDIS_MATRIX_ONLY ("3.12:6.0 3.10:4.2:5.0").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
MATRIX_DIR=$ROOT/.venv/matrix
SELF=$ROOT/scripts/matrix.sh
SUITES=(tests/test_audience.py tests/test_settings.py tests/test_publisher.py tests/test_websocket.py
        tests/test_dropin_uwsgi.py)
# A third field pins redis-py's series: the oldest supported (5.0) with the oldest Django, the newest elsewhere.
COMBOS=(3.10:4.2:5.0 3.10:5.2 3.11:4.2:5.0 3.11:5.2 3.12:4.2:5.0 3.12:6.0 3.13:5.2 3.13:6.0)
TOOLS=(pytest pytest-django pytest-timeout websocket-client)

interpreter() {  # the newest pyenv build of Python $1, or nothing
  local found
  found=$(ls -d "$PYENV_ROOT"/versions/"$1".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] && [ -x "$found" ] && echo "$found"
}

django_spec() {  # "4.2" -> "django>=4.2,<4.3"
  local major=${1%.*} minor=${1#*.}
  echo "django>=$1,<$major.$((minor + 1))"
}

run_one() {  # $1 = python version, $2 = Django series, $3 = redis-py series or empty (newest); prints one line
  local py=$1 dj=$2 rd=${3:-} python venv log install_log stamp want name redis_spec=redis
  [ -n "$rd" ] && redis_spec=$(django_spec "$rd" | sed 's/^django/redis/')
  name=py$py-django$dj${rd:+-redis$rd}
  venv=$MATRIX_DIR/$name
  log=$MATRIX_DIR/logs/$name.log
  install_log=$MATRIX_DIR/logs/$name.install.log
  python=$(interpreter "$py") || true
  if [ -z "$python" ]; then
    echo "MISSING  Python $py: no $PYENV_ROOT/versions/$py.*/bin/python (pyenv install $py)"
    return 1
  fi
  want="$(cat "$MATRIX_DIR/wheel.stamp") $python $(django_spec "$dj") $redis_spec ${TOOLS[*]}"
  stamp=$venv/.ws4redis-matrix
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    rm -rf "$venv"
    if ! { "$python" -m venv "$venv" &&
           "$venv/bin/python" -m pip install -q --disable-pip-version-check \
             "ws4redis[uwsgi,hiredis] @ file://$(ls "$MATRIX_DIR"/wheel/ws4redis-*.whl)" \
             "$(django_spec "$dj")" "$redis_spec" "${TOOLS[@]}"; } >"$install_log" 2>&1; then
      echo "FAILED   Python $py + Django $dj: install failed, see $install_log"
      return 1
    fi
    echo "$want" >"$stamp"
  fi
  local started=$SECONDS versions
  versions=$("$venv/bin/python" -c 'import sys, django, redis
print(sys.version.split()[0], django.get_version(), "redis", redis.__version__)')
  if (unset DJANGO_SETTINGS_MODULE PYTHONPATH; timeout 900 "$venv/bin/python" -m pytest -q "${SUITES[@]}") \
      >"$log" 2>&1; then
    echo "ok       Python $py + Django $dj${rd:+ + redis-py $rd} ($versions): $(tail -n 1 "$log" | tr -d '=') [$((SECONDS - started))s]"
  else
    echo "FAILED   Python $py + Django $dj${rd:+ + redis-py $rd} ($versions): $(tail -n 1 "$log" | tr -d '='), see $log"
    return 1
  fi
}

if [ "${1:-}" = "--one" ]; then  # "3.10:4.2:5.0"
  IFS=: read -r one_py one_dj one_rd <<<"$2"
  run_one "$one_py" "$one_dj" "$one_rd"
  exit
fi

mkdir -p "$MATRIX_DIR/logs"
WHEEL_PYTHON=$ROOT/.venv/bin/python  # made by `make venv`; any Python with pip will do
[ -x "$WHEEL_PYTHON" ] || WHEEL_PYTHON=python3
# The checkout's wheel, for its dependencies (the tests import ws4redis from the checkout), built from a copy (the
# checkout is not written to) whenever the packaging changes; a new wheel reinstalls every venv.
stamp=$(cat setup.py MANIFEST.in "$SELF" | sha256sum)
if [ ! -f "$MATRIX_DIR/wheel.stamp" ] || [ "$(cat "$MATRIX_DIR/wheel.stamp")" != "${stamp%% *}" ]; then
  rm -rf "$MATRIX_DIR/wheel" "$MATRIX_DIR/src"
  mkdir -p "$MATRIX_DIR/src"
  cp -r setup.py README.md MANIFEST.in ws4redis "$MATRIX_DIR/src/"
  "$WHEEL_PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$MATRIX_DIR/wheel" "$MATRIX_DIR/src"
  echo "${stamp%% *}" >"$MATRIX_DIR/wheel.stamp"
fi

echo "ws4redis support matrix (core suites; logs in $MATRIX_DIR/logs):"
started=$SECONDS
combos=(${WS4REDIS_MATRIX_ONLY:-${COMBOS[*]}})
status=0
printf '%s\n' "${combos[@]}" |
  xargs -P "${WS4REDIS_MATRIX_JOBS:-2}" -n 1 bash "$SELF" --one || status=$?
echo "matrix: ${#combos[@]} combinations in $((SECONDS - started))s"
if [ "$status" -ne 0 ]; then
  echo "ws4redis: THE SUPPORT MATRIX FAILED (see the FAILED/MISSING lines above)" >&2
  exit 1
fi
