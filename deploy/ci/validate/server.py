"""The echo-server's own reading of a container's args and env: the real binary with
--print-config (resolved configuration as JSON, exit 0; exit 2 with one sentence when
invalid), so the validator copies none of its flags or defaults.

The binary is ECHO_SERVER_BIN, else `cargo build -p echo-server` from the workspace.
Results are cached per (args, env): the self-test re-runs every check many times.
"""

from __future__ import annotations

import json
import os
import subprocess

from .common import cargo_binary

_binary: str | None = None
_cache: dict[tuple, tuple[dict | None, str]] = {}


def binary() -> str:
    """The echo-server executable: ECHO_SERVER_BIN, else built by cargo (once)."""
    global _binary
    if _binary is None:
        _binary = cargo_binary("echo-server", "ECHO_SERVER_BIN")
    return _binary


def container_env(container: dict) -> dict[str, str]:
    """The container's literal env values (valueFrom cannot be resolved without a cluster)."""
    return {
        str(e["name"]): str(e["value"])
        for e in container.get("env") or []
        if "name" in e and "value" in e
    }


def server_config(container: dict) -> tuple[dict | None, str]:
    """(resolved configuration, "") or (None, the server's one-sentence refusal)."""
    args = tuple(str(a) for a in container.get("args") or [])
    env = container_env(container)
    key = (args, tuple(sorted(env.items())))
    if key not in _cache:
        # Only the container's own ECHO_SERVER_* variables, never the validator's.
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_SERVER_")}
        run_env.update(env)
        res = subprocess.run(
            [binary(), "--print-config", *args],
            env=run_env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            check=False, timeout=30,
        )
        if res.returncode == 0:
            _cache[key] = (json.loads(res.stdout), "")
        elif res.returncode == 2:
            _cache[key] = (None, res.stderr.strip() or "refused its arguments")
        else:
            raise RuntimeError(
                f"echo-server --print-config {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}"
            )
    return _cache[key]


def server_version(container: dict) -> str | None:
    """The version the server answers with, or None when it refuses its args/env."""
    config, _ = server_config(container)
    return config["version"] if config else None
