"""`sdialect demo`: evaluate every method on the embedded tiny video DiT and write build/report/."""

from __future__ import annotations

from .app import DEFAULT_REPORT, add_common_arguments


def add_arguments(parser) -> None:
    add_common_arguments(parser, default_out=DEFAULT_REPORT)
    parser.set_defaults(embedded_model=True)  # the presets' fitted formatbooks belong to this model


def main(args) -> int:
    from .app import run
    from .workload import EMBEDDED_MODEL, embedded

    def make(*, samples, seed, device):
        return embedded(samples=samples, seed=seed, device=device)

    return run(args, make, model_info={"directory": str(EMBEDDED_MODEL), "embedded": True})
