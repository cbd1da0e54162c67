"""The demo's accounts, in a module without Django imports so ``run_demo.py`` can print them before Django loads.

alice and bob share the "ops" group; carol is in no group, so she shows what a non-member does not see.
"""

from __future__ import annotations

DEMO_GROUP = "ops"
DEMO_USERS = {"alice": "Alice Martin", "bob": "Bob Chen", "carol": "Carol Diaz"}
GROUP_MEMBERS = ("alice", "bob")
DEFAULT_PASSWORD = "ws4redis-demo"
