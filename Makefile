# ws4redis: `make demo` starts the demo, `make test` runs the whole suite and then the support matrix (every
# supported Python x its oldest and newest Django, core suites: scripts/matrix.sh, pyenv's interpreters). Both create
# .venv themselves; `make matrix` runs the matrix alone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test matrix venv system clean autobahn

$(VENV)/.installed: setup.py requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[uwsgi,wsproto,hiredis]' -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

system:  # Debian packages: redis-server, nginx, chromium, node (installed when run as root)
	@bash scripts/install-system-packages.sh

demo: system venv
	$(PY) examples/chatserver/run_demo.py

test: system venv
	$(PY) -m pytest
	bash scripts/matrix.sh

matrix: system venv
	bash scripts/matrix.sh

autobahn: venv  # RFC 6455 conformance of both transports (needs pyenv's Python 2.7; see docs/servers.md)
	$(PY) bench/autobahn/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
