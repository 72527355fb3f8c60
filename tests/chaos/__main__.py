"""`python -m tests.chaos [short|full]`: run the fault suite and print its figures; exit 1 if any figure
that must be 0 is not."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from tests.chaos.suite import FULL, SHORT, ZERO, report, run


def main() -> int:
    profile = SHORT if sys.argv[1:] == ["short"] else FULL
    kept = os.environ.get("CHAOS_WORKDIR")  # keep the logs of every process there (else a temporary folder)
    with tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
        workdir = Path(kept or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        figures, leaked = asyncio.run(run(profile, workdir))
    print(report(figures, profile))
    for line in leaked[:20]:
        print("  ", line)
    failed = [k for k in ZERO if figures.get(k)]
    if failed:
        print("FAILED:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
