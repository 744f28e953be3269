"""The same stage, the same events, on each CPython of this virtualenv's version found here.

How an interpreter was built changes what every Python process of the platform costs. A
distribution's python3 (Debian, Ubuntu, RHEL) is built with profile-guided and link-time
optimization and linked statically; pyenv and a plain `./configure --enable-shared` build are
not, and run the same bytecode slower. The Makefile makes .venv from /usr/bin/python3 when it
can, for this reason.

Runs the normalizing and detecting stage of bench/front.py (the full SigmaHQ set and our rules,
values let go) in a child process per interpreter: this virtualenv's, and every other CPython of
the same major and minor version on PATH, in /usr/bin, /usr/local/bin and pyenv's versions. The
others import this virtualenv's packages (the same version, so the same compiled extensions).
Each is measured twice, alternated, and keeps its best; prints CPU per event and the ratio to
this virtualenv's interpreter. Needs no services; never fails on a time.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def describe() -> dict[str, object]:
    """This interpreter: its real executable, version, and whether it loads libpython as a
    shared library (what bench/distributed.py prints beside its figures)."""
    maps = Path("/proc/self/maps")
    return {
        "real": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        "version": platform.python_version(),
        "minor": list(sys.version_info[:2]),
        "cpython": sys.implementation.name == "cpython",
        "shared": maps.exists() and "libpython" in maps.read_text(),
    }


def label(described: dict[str, object]) -> str:
    """`describe()`'s answer in a few words: "3.11.2, static"."""
    linked = "libpython shared" if described["shared"] else "static"
    return f"{described['version']}, {linked}"


def _candidates() -> list[str]:
    """Interpreters of this version by name, wherever they are commonly installed."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [sys.executable]
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin", "/usr/local/bin"]
    for folder in dirs:
        path = shutil.which(name, path=folder) if folder else None
        if path:
            found.append(path)
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found += sorted(glob.glob(os.path.join(pyenv, "versions", "*", "bin", name)))
    return found


def _describe(python: str) -> dict[str, object] | None:
    try:
        done = subprocess.run(
            [python, "-S", __file__, "--describe"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        described: dict[str, object] = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return described


def _interpreters() -> list[tuple[str, dict[str, object]]]:
    """This virtualenv's interpreter first, then the others of its version, each once."""
    chosen: list[tuple[str, dict[str, object]]] = []
    seen: set[object] = set()
    for python in _candidates():
        described = _describe(python)
        if (
            described is None
            or not described["cpython"]
            or described["minor"] != list(sys.version_info[:2])
            or described["real"] in seen
        ):
            continue
        seen.add(described["real"])
        chosen.append((python, described))
    return chosen


def _child(site_dir: str, events: int, rounds: int) -> int:
    """One interpreter's measurement, printed as JSON."""
    import asyncio
    import site

    site.addsitedir(site_dir)  # this virtualenv's packages, .pth files included
    sys.path.insert(0, str(ROOT))
    from bench.front import _Bytes, _cost, _setup, make_stage

    detection, raws = _setup(events)
    stage = make_stage(_Bytes(), detection)
    cost = asyncio.run(_cost(stage, raws, rounds, None))
    print(json.dumps({"us": cost, "rules": len(detection.rules.rules), "events": len(raws)}))
    return 0


def _measure(python: str, events: int, rounds: int) -> dict[str, float]:
    site_dir = sysconfig.get_paths()["purelib"]
    done = subprocess.run(
        # -S: no site-packages of the interpreter's own; this virtualenv's alone, added by the child.
        [
            python,
            "-S",
            __file__,
            "--child",
            site_dir,
            "--events",
            str(events),
            "--rounds",
            str(rounds),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{python} failed: {done.stderr.strip()[-500:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", metavar="SITE", help=argparse.SUPPRESS)
    parser.add_argument("--describe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.describe:
        print(json.dumps(describe()))
        return 0
    if args.child:
        return _child(args.child, args.events, args.rounds)
    interpreters = _interpreters()
    best: dict[str, dict[str, float]] = {}
    failed: dict[str, str] = {}
    for _ in range(2):  # alternated, so that a slower stretch of the machine falls on all
        for python, _described in interpreters:
            if python in failed:
                continue
            try:
                result = _measure(python, args.events, args.rounds)
            except RuntimeError as exc:
                failed[python] = str(exc)
                continue
            if python not in best or result["us"] < best[python]["us"]:
                best[python] = result
    ours = best.get(sys.executable)
    if ours is None:
        print(f"this virtualenv's interpreter failed: {failed.get(sys.executable)}")
        return 1
    print(f"normalizing and detecting stage (bench/front.py), {int(ours['events']):,} syslog lines,"
          f" {int(ours['rules']):,} rules; best of {2 * args.rounds} passes each")  # fmt: skip
    for python, described in interpreters:
        named = f"{python} ({label(described)})"
        if python in failed:
            print(f"  {named}: did not run: {failed[python]}")
            continue
        mine = " this virtualenv's" if python == sys.executable else ""
        cost = best[python]["us"]
        print(f"  {named:<72} {cost:6.2f} us/event  {ours['us'] / cost:.2f}x{mine}")
    if len(interpreters) == 1:
        print(f"  no other CPython {sys.version_info.major}.{sys.version_info.minor} found here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
