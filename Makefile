# ws4redis: `make demo` starts the demo, `make test` runs the whole suite. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv system clean autobahn

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

autobahn: venv  # RFC 6455 conformance of both transports (needs pyenv's Python 2.7; see docs/servers.md)
	$(PY) bench/autobahn/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
