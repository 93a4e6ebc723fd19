"""Helpers shared by the benchmarks: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    """One line describing where a benchmark ran."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.system()} {platform.machine()}, {cpu}, {cores} cores, Python {platform.python_version()}"


def write_section(title: str, body: str, path: Path = BENCHMARKS) -> None:
    """Add or replace the section ``## title`` in ``path`` (BENCHMARKS.md), keeping the others."""
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nWritten by `bench/*.py --write`; ratios are measured in the same run.\n"
    )
    stamp = f"_{datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine()}_\n\n"
    section = f"## {title}\n\n{stamp}{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(section + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")
