"""Run every `benchmarks/bench_*.py` (or those named): `python -m benchmarks [intake router ...]`.

Each module exposes `async def main(settings: BenchSettings) -> None` and prints its own figures.
Those in `ONLY_WHEN_NAMED` (long, with state kept between runs) run only when named.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys
import time
import traceback

import benchmarks
from benchmarks.support import BenchSettings

ONLY_WHEN_NAMED = {"bench_e2e"}


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    wanted = [n for n in names if n.removeprefix("bench_") in argv or (not argv and n not in ONLY_WHEN_NAMED)]
    settings = BenchSettings()
    failures = 0
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            asyncio.run(importlib.import_module(f"benchmarks.{name}").main(settings))
        except Exception as exc:  # noqa: BLE001 - report and go on with the other benchmarks
            failures += 1
            print(f"{name} FAILED: {exc!r}", flush=True)
            traceback.print_exc()
        print(f"--- {name} took {time.perf_counter() - started:.1f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
