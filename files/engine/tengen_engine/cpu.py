"""Refuse to start KataGo on a CPU its build cannot run on, with a message instead of SIGILL.

The `tengen/engine` image builds KataGo with AVX2 and FMA by default (`KATAGO_AVX2=1`, several
times faster on the Eigen backend) and writes the flags it needs to a file; a CPU without them
would kill KataGo with "illegal instruction" at its first evaluation.
"""

from __future__ import annotations

from pathlib import Path


def cpu_flags(cpuinfo: Path) -> set[str]:
    """The flags of the first processor in a /proc/cpuinfo file (x86: the "flags" line)."""
    for line in cpuinfo.read_text(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return set(value.split())
    return set()


def cpu_problem(required_file: Path, cpuinfo: Path) -> str | None:
    """Why this CPU cannot run the KataGo build described by `required_file`, or None if it can."""
    if not required_file.is_file():
        return None  # no KataGo image build here (a host run, the tests): nothing to check
    required = required_file.read_text().split()
    if not required:
        return None  # a portable build
    missing = [flag for flag in required if flag not in cpu_flags(cpuinfo)]
    if not missing:
        return None
    return (
        f"this CPU lacks {' '.join(missing)} (per {cpuinfo}), which this KataGo build needs "
        f"({' '.join(required)}): it would die with 'illegal instruction'. Move to a CPU with "
        "them, or build the image with --build-arg KATAGO_AVX2=0 for a portable, slower KataGo."
    )
