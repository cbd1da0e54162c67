"""Autobahn|Testsuite (fuzzingclient, cases 1-7, 9, 10) against ws4redis on gevent, uWSGI and ASGI, on 127.0.0.1 only.

    .venv/bin/python bench/autobahn/run.py [--out DIR] [--summary FILE] [--agents gevent-facility,...] [--cases "1.*"]

Agents:
- ``gevent-transport``: ``echo_app.py``, a bare echo on the wsproto transport (RFC 6455 conformance of the transport);
- ``gevent-facility``: ``manage.py runwebsocket`` of the test project, echo through Redis on a facility
  (``?subscribe-broadcast&publish-broadcast&echo``);
- ``uwsgi-facility``: the same facility under uWSGI 2.0.31 (``ws4redis.wsgi:application``);
- ``uvicorn-facility``, ``daphne-facility``, ``hypercorn-facility``, ``granian-facility``: the same facility on the
  ASGI application of the test project (``tests.project.asgi:application``) under each server
  (``tests.asgi_servers.AsgiServer``); the websocket framing is the server's own. ``asgi_size_options`` raises the
  servers' message and frame limits above case 9's 16 MiB messages;
- ``uvicorn-wsproto-facility``: uvicorn with ``--ws wsproto`` instead of its default framing (the websockets library).

Starts its own redis-server and servers on free ports, stops them by pid, writes ``summary.md`` beside this file
from the report. ``wstest`` runs under Python 2.7: ``pip install --target DIR -r requirements-py27.txt`` with a
Python 2.7 interpreter; ``WS4REDIS_PY27`` and ``WS4REDIS_AUTOBAHN_DIR`` name them if not at the default paths
(see docs/servers.md). ``AUTOBAHN_TIMEOUT`` bounds the whole wstest run (seconds, default 1500).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.asgi_servers import ASGI_SERVERS, AsgiServer  # noqa: E402
from tests.gevent_servers import GeventServer  # noqa: E402
from tests.servers import Process, RedisServer, UwsgiServer, free_port, wait_for_port  # noqa: E402

FACILITY = "/ws/autobahn?subscribe-broadcast&publish-broadcast&echo"
OVERRIDES = {
    "WS4REDIS_POLICY": "permissive",  # anonymous publish-broadcast, as the original allowed
    "WS4REDIS_MAX_MESSAGE_SIZE": 32 * 1024 * 1024,  # case 9 sends up to 16 MiB
    "WS4REDIS_QUEUE_BYTES": 256 * 1024 * 1024,
    "WS4REDIS_PUBLISH_RATE": None,  # cases 9.7/9.8 send 1,000 messages back to back
    "WS4REDIS_EXPIRE": 0,
    "WS4REDIS_HEARTBEAT": None,
    "WS4REDIS_ALLOWED_ORIGINS": ["*"],
}

AGENTS = ("gevent-transport", "gevent-facility", "uwsgi-facility", "uvicorn-facility", "uvicorn-wsproto-facility",
          "daphne-facility", "hypercorn-facility", "granian-facility")
LIMIT = str(32 * 1024 * 1024)


def asgi_size_options(name: str, workdir: Path) -> list[str]:
    """Each ASGI server's options for messages up to 32 MiB (case 9 sends 16 MiB in one frame and in 64 KiB frames).

    uvicorn ``--ws-max-size`` (default 16 MiB); daphne ``--websocket-max-message-size`` and
    ``--websocket-max-frame-size`` (default 1 MiB each); hypercorn has no command-line option, only the configuration
    key ``websocket_max_message_size`` (default 16 MiB) in a TOML file; granian has no setting (its tungstenite
    defaults, 64 MiB per message and 16 MiB per frame, admit case 9)."""
    if name == "uvicorn":
        return ["--ws-max-size", LIMIT]
    if name == "daphne":
        return ["--websocket-max-message-size", LIMIT, "--websocket-max-frame-size", LIMIT]
    if name == "hypercorn":
        config = workdir / "hypercorn.toml"
        config.write_text(f"websocket_max_message_size = {LIMIT}\n")
        return ["--config", str(config)]
    return []


def wstest_command(spec: str) -> list[str]:
    """``python2.7 -c`` running autobahntestsuite from ``WS4REDIS_AUTOBAHN_DIR`` (a pip --target directory; addsitedir runs its .pth files, which zope needs)."""
    python = os.environ.get("WS4REDIS_PY27", os.path.expanduser("~/.pyenv/versions/2.7.18/bin/python2.7"))
    target = os.environ.get("WS4REDIS_AUTOBAHN_DIR", "/tmp/ws4redis-autobahn-py27")
    code = f"import site; site.addsitedir({target!r}); from autobahntestsuite.wstest import run; run()"
    return [python, "-c", code, "-m", "fuzzingclient", "-s", spec]


def summarise(index: dict[str, dict[str, dict[str, str]]]) -> str:
    """Markdown: per agent and case group, how many passed, passed non-strictly, failed; the failing cases."""
    lines = ["| agent | group | OK | NON-STRICT / INFORMATIONAL | FAILED |", "|---|---|---|---|---|"]
    failures: list[str] = []
    for agent, cases in sorted(index.items()):
        groups: dict[str, list[str]] = {}
        for case, result in cases.items():
            groups.setdefault(case.split(".")[0], []).append(result["behavior"])
            if result["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL"):
                failures.append(f"- {agent} {case}: {result['behavior']} (close: {result.get('behaviorClose')})")
        for group in sorted(groups, key=int):
            seen = groups[group]
            lines.append(f"| {agent} | {group}.* | {seen.count('OK')} | "
                         f"{seen.count('NON-STRICT') + seen.count('INFORMATIONAL')} | "
                         f"{len(seen) - seen.count('OK') - seen.count('NON-STRICT') - seen.count('INFORMATIONAL')} |")
        total = [r["behavior"] for r in cases.values()]
        lines.append(f"| **{agent}** | all {len(total)} | **{total.count('OK')}** | "
                     f"**{total.count('NON-STRICT') + total.count('INFORMATIONAL')}** | "
                     f"**{len(total) - total.count('OK') - total.count('NON-STRICT') - total.count('INFORMATIONAL')}** |")
    return "\n".join(lines + ["", "Failed cases:", "", *(failures or ["- none"])]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", default=",".join(AGENTS), help="comma-separated, of: " + ", ".join(AGENTS))
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "ws4redis-autobahn"))
    parser.add_argument("--cases", default="*")
    parser.add_argument("--summary", default=str(HERE / "summary.md"), help="where the Markdown summary goes")
    args = parser.parse_args()
    agents = args.agents.split(",")
    unknown = set(agents) - set(AGENTS)
    if unknown:
        parser.error(f"unknown agents: {', '.join(sorted(unknown))}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
    os.environ["WS4REDIS_TEST_REDIS_PORT"] = str(free_port())
    os.environ["WS4REDIS_TEST_DB"] = os.path.join(tempfile.mkdtemp(prefix="ws4redis-ab-"), "db.sqlite3")
    started: list[Process] = []
    redis = RedisServer(port=int(os.environ["WS4REDIS_TEST_REDIS_PORT"]))
    started.append(redis)
    try:
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], cwd=ROOT, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        servers = []
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        if "gevent-transport" in agents:
            port = free_port()
            echo = Process([sys.executable, str(HERE / "echo_app.py"), str(port)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
            started.append(echo)
            wait_for_port(port, proc=echo.proc)
            servers.append({"agent": "ws4redis-gevent-transport-echo", "url": f"ws://127.0.0.1:{port}/"})
        if "gevent-facility" in agents:
            gevent_server = GeventServer(overrides=OVERRIDES, with_django=False)
            started.append(gevent_server)
            servers.append({"agent": "ws4redis-gevent-facility", "url": f"ws://127.0.0.1:{gevent_server.port}{FACILITY}"})
        if "uwsgi-facility" in agents:
            uwsgi = UwsgiServer(overrides=OVERRIDES, extra=["--websocket-max-size", str(32 * 1024)])
            started.append(uwsgi)
            servers.append({"agent": "ws4redis-uwsgi-facility", "url": f"ws://127.0.0.1:{uwsgi.port}{FACILITY}"})
        variants: list[tuple[str, str, list[str]]] = [(name, name, []) for name in ASGI_SERVERS]
        variants.append(("uvicorn-wsproto", "uvicorn", ["--ws", "wsproto"]))
        for agent, name, options in variants:
            if f"{agent}-facility" in agents:
                asgi = AsgiServer(name, overrides=OVERRIDES, extra=asgi_size_options(name, out) + options)
                started.append(asgi)
                servers.append({"agent": f"ws4redis-{agent}-facility", "url": f"ws://127.0.0.1:{asgi.port}{FACILITY}"})
        spec = {"options": {"failByDrop": False}, "outdir": str(out / "reports"), "servers": servers,
                "cases": [args.cases], "exclude-cases": ["8.*", "11.*", "12.*", "13.*"], "exclude-agent-cases": {}}
        (out / "fuzzingclient.json").write_text(json.dumps(spec, indent=1))
        with open(out / "wstest.log", "wb") as log:
            subprocess.run(wstest_command(str(out / "fuzzingclient.json")), cwd=out, stdout=log,
                           stderr=subprocess.STDOUT, timeout=float(os.environ.get("AUTOBAHN_TIMEOUT", "1500")))
        index = json.loads((out / "reports" / "index.json").read_text())
        summary = summarise(index)
        summary_path = Path(args.summary)
        summary_path.write_text(
            "# Autobahn|Testsuite 25.10.1, fuzzingclient, cases 1-7, 9, 10 (generated by run.py)\n\n" + summary
        )
        summary_path.with_name("index-last-run.json").write_text(json.dumps(index, indent=1, sort_keys=True))
        print(summary)
        return 0
    finally:
        for process in reversed(started):
            process.stop()


if __name__ == "__main__":
    sys.exit(main())
