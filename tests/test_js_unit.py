"""Runs the client's unit tests (``tests/js/*.test.mjs``) in Node's own test runner; fails when node fails."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.servers import ROOT


def test_node_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (apt-get install nodejs): the JS client's unit tests cannot run")
    result = subprocess.run(
        [node, "--test", "--no-warnings", "tests/js"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    assert "# fail 0" in result.stdout
