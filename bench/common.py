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


def _subsection_pattern(title: str) -> re.Pattern[str]:
    """``### title`` up to the next ``###``/``##`` heading or the end."""
    return re.compile(rf"^### {re.escape(title)}\n.*?(?=^### |^## |\Z)", re.S | re.M)


def write_section(
    title: str, body: str, path: Path = BENCHMARKS, keep: tuple[str, ...] = ()
) -> None:
    """Add or replace the section ``## title`` in ``path`` (BENCHMARKS.md), keeping the others.

    ``keep``: titles of ``### `` subsections of the old section, written by other scripts
    (:func:`write_subsection`), carried over to the end of the new one."""
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nWritten by `bench/*.py --write`; ratios are measured in the same run.\n"
    )
    stamp = f"_{datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine()}_\n\n"
    section = f"## {title}\n\n{stamp}{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    old = pattern.search(text)
    for sub in keep:
        found = _subsection_pattern(sub).search(old.group(0)) if old else None
        if found:
            section += "\n" + found.group(0).strip() + "\n"
    replacement = section + "\n"
    text = pattern.sub(lambda _: replacement, text) if old else text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def write_subsection(section: str, title: str, body: str, path: Path = BENCHMARKS) -> None:
    """Add or replace ``### title`` at the end of the section ``## section`` of ``path``, leaving
    the rest of the file as it is (the section must exist)."""
    text = path.read_text()
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text)
    if not found:
        raise ValueError(f"no section '## {section}' in {path}; write that section first")
    stamp = f"_{datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {machine()}_\n\n"
    sub = f"### {title}\n\n{stamp}{body.strip()}\n"
    old = found.group(0)
    if _subsection_pattern(title).search(old):
        new = _subsection_pattern(title).sub(lambda _: sub + "\n", old, count=1)
    else:
        new = old.rstrip() + "\n\n" + sub + "\n"
    text = text[: found.start()] + new.rstrip() + "\n\n" + text[found.end() :]
    path.write_text(text.rstrip() + "\n")
