"""Write one benchmark's section of docs/benchmarks.md, leaving every other section as it is."""

from __future__ import annotations

from pathlib import Path

TITLE = "# Benchmarks\n"


def replace_section(path: Path, heading: str, body: str) -> None:
    """Put ``heading`` + ``body`` in place of the section ``heading`` (up to the next ``## `` heading), or
    append it at the end when the file has no such section yet."""
    text = path.read_text() if path.exists() else TITLE
    lines = text.splitlines(keepends=True)
    section = [f"{heading}\n", "\n", body.rstrip("\n") + "\n"]
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == heading)
    except StopIteration:
        if lines and lines[-1].strip():
            lines[-1] = lines[-1].rstrip("\n") + "\n"
            lines.append("\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines + section))
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    following = ["\n"] if end < len(lines) else []
    path.write_text("".join(lines[:start] + section + following + lines[end:]))
