"""Optional profiling (``python -m bench --profile``): py-spy samples the sandbox's API
process while wrk loads it, and the collapsed stacks are summarised as the top frames by
inclusive and by self time. py-spy is a diagnosis tool, not a dependency:
``.venv/bin/pip install py-spy`` first. Numbers measured while profiling are perturbed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


@contextmanager
def recording(
    pid: int, out: Path, label: str, *, subprocesses: bool = False
) -> Iterator[dict[str, object]]:
    """py-spy samples ``pid`` (200 Hz, non-blocking; with ``subprocesses``, its children
    too: ``api --workers N``) while the block runs; on exit the yielded dict is filled with
    the summary (and printed). No py-spy: nothing happens."""
    result: dict[str, object] = {}
    binary = py_spy()
    if binary is None:
        print("bench: --profile needs py-spy (.venv/bin/pip install py-spy); not profiling")
        yield result
        return
    cmd = [binary, "record", "--pid", str(pid), "-r", "200", "--nonblocking", "--threads"]
    cmd += ["--format", "raw", "-o", str(out)] + (["--subprocesses"] if subprocesses else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield result
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if out.exists():
        result.update(summarise(out))
        result["file"] = str(out)
        print_summary(label, result)


def _frame(raw: str) -> str:
    """``fn (path/to/module.py:123)`` → ``fn (module.py)``: lines merged per function."""
    name, _, where = raw.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else file
    return f"{name} ({short})"


def summarise(path: Path, top: int = 15) -> dict[str, object]:
    """Top frames by inclusive and self share of all non-idle samples, and the share of
    the samples taken on the event-loop thread (the one running ``main``)."""
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    per_thread: Counter[str] = Counter()
    loop_threads: set[str] = set()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw = [f for f in stack.split(";") if f]
        thread = raw[0] if raw and raw[0].startswith("thread ") else ""
        frames = [_frame(f) for f in (raw[1:] if thread else raw)]
        if not frames:
            continue
        total += count
        per_thread[thread] += count
        if any(f.startswith("main (") for f in frames):
            loop_threads.add(thread)
        for f in set(frames):
            inclusive[f] += count
        self_[frames[-1]] += count
    if not total:
        return {"samples": 0, "event_loop_share": 0.0, "inclusive": [], "self": []}

    def pct(counter: Counter[str]) -> list[list[object]]:
        return [[f, round(100 * n / total, 1)] for f, n in counter.most_common(top)]

    loop = sum(per_thread[t] for t in loop_threads)
    return {
        "samples": total,
        "event_loop_share": round(100 * loop / total, 1),
        "inclusive": pct(inclusive),
        "self": pct(self_),
    }


def print_summary(label: str, summary: dict[str, object], top: int = 12) -> None:
    print(
        f"profile {label}: {summary['samples']} non-idle samples (py-spy, all threads), "
        f"{summary['event_loop_share']}% on the event-loop thread"
    )
    for kind in ("self", "inclusive"):
        rows = summary[kind]
        assert isinstance(rows, list)
        print(f"  top by {kind}:")
        for frame, share in rows[:top]:
            print(f"    {share:5.1f}%  {frame}")
