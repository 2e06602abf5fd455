"""Write one benchmark's section of docs/benchmarks.md, leaving every other section as it is."""

from __future__ import annotations

import platform
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


def cpu_description() -> str:
    """The CPU's model name and the instructions that decide NRRN's speed on it (bfloat16 or not), e.g.
    "AMD EPYC (AVX-512 BF16, no AMX)": machines of one name differ, so every figure names them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), ""
    )
    flags = set(
        next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    )
    if "amx_bf16" in flags:
        isa = "AMX"
    elif "avx512_bf16" in flags:
        isa = "AVX-512 BF16, no AMX"
    elif "avx512f" in flags:
        isa = "AVX-512 without BF16"
    elif "avx2" in flags:
        isa = "AVX2, no AVX-512"
    else:
        isa = "no AVX2"
    return f"{name or platform.machine()} ({isa})"
