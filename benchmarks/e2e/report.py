"""Figures from the tracked calls, printed as plain tables."""

from __future__ import annotations

from benchmarks.bench_intake import percentile
from benchmarks.e2e.surge import STAGES, Call, Tracker

LABELS = {
    "accept": "accept (HTTP reply)",
    "dispatch": "router dispatch on Kafka",
    "routing": "  of it the router (after receipt)",
    "hotline": "hotline shows dispatch*",
    "notify": "notify has clocks*",
}


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        cells = enumerate(zip(row, widths, strict=True))
        return "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in cells)

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def ms(value: float) -> str:
    return f"{value * 1000:.0f}" if value < 10 else f"{value:.1f}s"


def stage_rows(tracker: Tracker, calls: list[Call], label: str = "") -> list[list[str]]:
    rows = []
    for stage in STAGES:
        expected = [
            c
            for c in calls
            if (stage in ("accept", "dispatch") or c.sampled) and (stage == "accept" or c.case_id is not None)
        ]
        reached = [(at, c) for c in expected if (at := tracker.at(c, stage)) is not None]
        waits = [at - c.scheduled for at, c in reached]
        if reached:
            span = max(at for at, _ in reached) - min(c.scheduled for c in calls)
            rate = len(reached) / max(span, 1e-9) * (1 if stage in ("accept", "dispatch") else _every(calls))
        row = [f"{label}{LABELS[stage]}", f"{len(reached)}/{len(expected)}"]
        row += _spread(waits)
        row.append(f"{rate:.1f}" if reached else "-")
        rows.append(row)
        if stage == "dispatch":
            rows.append(_routing_row(tracker, expected, label))
    return rows


def _routing_row(tracker: Tracker, calls: list[Call], label: str) -> list[str]:
    """The router's own part of the dispatch: from the help request's record to the dispatch's."""
    waits = [w for c in calls if (w := tracker.routing(c)) is not None]
    return [f"{label}{LABELS['routing']}", f"{len(waits)}/{len(calls)}", *_spread(waits), "-"]


def _spread(waits: list[float]) -> list[str]:
    """p50, p95, p99 and max ("-" each when there are none)."""
    return [ms(percentile(waits, p)) for p in (50, 95, 99)] + [ms(max(waits))] if waits else ["-"] * 4


def _every(calls: list[Call]) -> int:
    sampled = sum(c.sampled for c in calls)
    return round(len(calls) / sampled) if sampled else 1


HEADERS = ["stage", "reached", "p50 ms", "p95 ms", "p99 ms", "max ms", "done/s"]


def print_phase(tracker: Tracker, calls: list[Call], title: str) -> None:
    failed = [c for c in calls if c.failed]
    print(f"\n{title}: {len(calls)} calls, {len(failed)} failed" + (f" (e.g. {failed[0].failed})" if failed else ""))
    shared = [c for c in calls if c.shared_phone]
    if shared:
        rows = stage_rows(tracker, [c for c in calls if not c.shared_phone], "other callers: ")
        rows += stage_rows(tracker, shared, "the one phone: ")
    else:
        rows = stage_rows(tracker, calls)
    print(table(HEADERS, rows), flush=True)
    print_timeline(tracker, [c for c in calls if not c.shared_phone])
    gaps = {stage: sorted(c.gap[stage] for c in calls if stage in c.gap) for stage in ("hotline", "notify")}
    if any(gaps.values()):
        print(
            "  * polled: a figure is within the gap between the case's last two polls of when the stage was "
            "reached; that gap p50/p99: "
            + ", ".join(
                f"{stage} {percentile(g, 50) * 1000:.0f}/{percentile(g, 99) * 1000:.0f} ms"
                for stage, g in gaps.items()
                if g
            ),
            flush=True,
        )


WINDOW_S = 30.0  # the timeline's step


def timeline_rows(tracker: Tracker, calls: list[Call], window_s: float = WINDOW_S) -> list[list[str]]:
    """Each stage's p99 for the calls sent in each `window_s` of the phase ("-": none reached it): a lag
    that grows, or a stall that makes the tail of a whole run, shows in the window it happened in."""
    if not calls:
        return []
    start = min(c.scheduled for c in calls)
    windows = int((max(c.scheduled for c in calls) - start) // window_s) + 1
    rows = [["p99 ms of the calls sent from", *(f"{w * window_s:.0f}s" for w in range(windows))]]
    for stage in STAGES:
        waits: list[list[float]] = [[] for _ in range(windows)]
        for call in calls:
            if (at := tracker.at(call, stage)) is not None:
                waits[int((call.scheduled - start) // window_s)].append(at - call.scheduled)
        rows.append([LABELS[stage], *(ms(percentile(w, 99)) if w else "-" for w in waits)])
    return rows


def print_timeline(tracker: Tracker, calls: list[Call]) -> None:
    if rows := timeline_rows(tracker, calls):
        print(table(rows[0], rows[1:]), flush=True)


def print_resources(cases: int, cpu: dict[str, float], commands: dict[str, dict[str, float]]) -> None:
    """CPU per case of every process, store commands per case of every service, and where each service
    waited on its store and what it sent most (command and collection)."""
    rows = []
    for name, seconds in cpu.items():
        per_service = {k: v for k, v in commands.get(name, {}).items() if not k.startswith(("seconds ", "sent "))}
        total = sum(per_service.values())
        top = ", ".join(f"{k} {v / cases:.1f}" for k, v in sorted(per_service.items(), key=lambda kv: -kv[1])[:5])
        rows.append(
            [
                name,
                f"{seconds * 1000 / cases:.1f}",
                f"{seconds:.1f}",
                f"{total / cases:.1f}" if per_service else "-",
                top or "-",
            ]
        )
    print(f"\nper case over the plain surge ({cases} cases accepted):")
    print(table(["process", "CPU ms/case", "CPU s", "store cmds/case", "top commands per case"], rows), flush=True)
    rows = []
    for name, figures in commands.items():
        waits = sorted(
            ((k.split(" ", 1)[1], v) for k, v in figures.items() if k.startswith("seconds ")), key=lambda kv: -kv[1]
        )
        total = sum(v for _, v in waits)
        top = ", ".join(f"{k} {v * 1000 / cases:.1f}" for k, v in waits[:4])
        sent = sorted(
            ((k.split(" ", 1)[1], v) for k, v in figures.items() if k.startswith("sent ")), key=lambda kv: -kv[1]
        )
        most = ", ".join(f"{k} {v / cases:.2f}" for k, v in sent[:8])
        rows.append([name, f"{total * 1000 / cases:.1f}", top or "-", most or "-"])
    headers = ["service", "store wait ms/case", "most waited on (command collection ms/case)"]
    print(table([*headers, "most sent (command collection per case)"], rows), flush=True)
