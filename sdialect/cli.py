"""`sdialect`: the project's command line.

Every subcommand is a module with ``add_arguments(parser)`` and ``main(args) -> int``; the table below
maps command names to those modules, so each subsystem owns its command and the heavy imports
(torch, triton, amaranth) happen only inside ``main``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import _quiet
from .errors import USER_ERRORS

#: command -> (module, one-line help). "bench" takes a target: bench TARGET -> module.
COMMANDS = {
    "formats": ("sdialect.commands.formats", "list the formats, their bits per element and formatbooks"),
    "quantize": ("sdialect.commands.quantize", "quantize one .npy tensor into the .npz file of docs/NUMERICS.md section 6"),
    "formatbook": ("sdialect.commands.formatbook", "fit a formatbook to captured activations (held-out SQNR report); show a book"),
    "matmul": ("sdialect.commands.matmul", "bit-exact quantized matmul of two .npy tensors (docs/NUMERICS.md section 4)"),
    "demo": ("evaluation.cli_demo", "evaluate every 4-bit method on the embedded video DiT into build/report"),
    "eval": ("evaluation.cli_eval", "the demo's evaluation on a local diffusers video transformer directory"),
    "tour": ("sdialect.commands.golden_demo", "the golden model on real video clips, every format side by side"),
    "rtl": ("rtl_gen.cli_rtl", "generate Verilog for the hardware units into build/rtl"),
    "synth": ("rtl_gen.cli_synth", "synthesize the units and tile (Yosys, ECP5) into a cost report"),
}
BENCHMARKS = {
    "golden": ("sdialect.commands.bench_golden", "golden-model quantization speed against torchao's MXFP4"),
    "kernels": ("kernels.cli_bench", "Triton kernel throughput on a GPU"),
    "model": ("golden.dit.cli_bench", "model quantization time, memory and per-step cost"),
}


def _add_commands(subparsers, table: dict[str, tuple[str, str]]) -> None:
    for name, (module_name, help_text) in table.items():
        module = importlib.import_module(module_name)
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(parser)
        parser.set_defaults(run=module.main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdialect", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_commands(commands, COMMANDS)
    bench = commands.add_parser("bench", help="benchmarks writing JSON under build/bench/")
    _add_commands(bench.add_subparsers(dest="target", required=True, metavar="TARGET"), BENCHMARKS)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet.install()  # third-party lines the user cannot act on (sdialect/_quiet.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as err:
        print(f"sdialect {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sdialect {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
