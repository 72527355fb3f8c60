"""Run services as separate processes: `python -m common.runner [hotline router relief notify frontdoor]`.

Each service is one uvicorn process on its own port (from its Settings). Ctrl-C stops them all cleanly.
The front door is where people go: it is told where the others listen.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time

from common.settings import ServiceSettings

SERVICES = ("hotline", "router", "relief", "notify", "frontdoor")
BEHIND_FRONTDOOR = ("hotline", "router", "relief", "notify")


def settings_of(name: str) -> ServiceSettings:
    settings: ServiceSettings = importlib.import_module(f"services.{name}.settings").Settings()
    return settings


def command(name: str) -> list[str]:
    settings = settings_of(name)
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"services.{name}.app:create_app",
        "--host",
        settings.http_host,
        "--port",
        str(settings.http_port),
        "--no-access-log",
    ]


def environment(name: str) -> dict[str, str]:
    env = dict(os.environ)
    if name == "frontdoor":
        for other in BEHIND_FRONTDOOR:
            s = settings_of(other)
            env.setdefault(f"FRONTDOOR_{other.upper()}_URL", f"http://{s.http_host}:{s.http_port}")
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description="Run services as separate processes.")
    parser.add_argument("services", nargs="*", help=f"any of {', '.join(SERVICES)} (default: all)")
    names = parser.parse_args().services or list(SERVICES)
    if unknown := set(names) - set(SERVICES):
        parser.error(f"unknown service: {', '.join(sorted(unknown))}")
    # Own sessions: only this runner signals them, so Ctrl-C reaches each exactly once.
    children = {name: subprocess.Popen(command(name), env=environment(name), start_new_session=True) for name in names}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print("\nServices (Ctrl-C stops them all):", flush=True)
    for name in names:
        s = settings_of(name)
        print(f"  {name:9s} http://{s.http_host}:{s.http_port}/docs   (health: /healthz, /readyz)", flush=True)
    if "frontdoor" in names:
        s = settings_of("frontdoor")
        print(f"\nPeople: open http://{s.http_host}:{s.http_port}/ and sign in.", flush=True)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"{name} exited with code {child.returncode}; stopping the others", file=sys.stderr)
                stopping, exit_code = True, 1
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 20
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
