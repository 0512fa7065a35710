"""Which methods each preset of `sdialect demo` / `sdialect eval` runs (argument parsing only)."""

import pytest

from evaluation.app import settings_from
from sdialect.cli import build_parser


def settings(*argv):
    args = build_parser().parse_args(list(argv))
    return settings_from(args)


@pytest.mark.parametrize(
    ("argv", "clips", "seeds", "steps", "ablations", "formatbooks"),
    [
        (("demo",), 4, 1, 8, False, True),
        (("demo", "--full"), 4, 3, 8, True, True),
        (("demo", "--quick"), 1, 1, 4, False, False),
        (("demo", "--quick", "--formatbooks"), 1, 1, 4, False, True),
        (("demo", "--full", "--no-formatbooks"), 4, 3, 8, True, False),
        (("eval", "--model", "somewhere"), 4, 1, 8, False, False),  # the fitted books belong to the embedded model
    ],
)
def test_presets(argv, clips, seeds, steps, ablations, formatbooks):
    samples, seed_list, s, _ = settings(*argv, "--device", "cpu")
    assert (samples, len(seed_list), s.steps, s.ablations, s.formatbooks) == (clips, seeds, steps, ablations, formatbooks)
    keys = [m.key for m in s.methods()]
    assert ("tdit64-q-e4m3+ad+seda" in keys) == formatbooks
    assert len(keys) == len(set(keys))
