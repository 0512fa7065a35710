"""`sdialect demo --out`: refused up front (one sentence, exit 2, nothing touched) unless it names a new
folder, an empty folder or an earlier report; and the staging/replacement rules of evaluation.output."""

import os

import pytest

from evaluation.output import STAGING_MARKER, Staging, check_out
from golden.errors import UsageError
from sdialect.cli import main


def run_demo(capsys, out):
    code = main(["demo", "--quick", "--steps", "1", "--out", str(out)])
    err = capsys.readouterr().err
    return code, err


def assert_refused(code, err, fragment):
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("sdialect demo: error: ")]
    assert len(lines) == 1, err
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_existing_folder_that_is_not_a_report_is_refused_and_kept(capsys, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"precious")
    code, err = run_demo(capsys, folder)
    assert_refused(code, err, "not an earlier report")
    assert (folder / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_existing_file_is_refused_up_front_and_kept(capsys, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    code, err = run_demo(capsys, target)
    assert_refused(code, err, "is an existing file")
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("where", [".", "..", ""])
def test_current_directory_and_its_parents_are_refused(capsys, tmp_path, monkeypatch, where):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, err = run_demo(capsys, where)
    assert_refused(code, err, "--out")
    assert list(work.iterdir()) == []


def test_unwritable_place_is_refused_before_any_work(capsys):
    # /proc refuses new entries even for root, so this holds whoever runs the tests.
    code, err = run_demo(capsys, "/proc/sdialect-report/report")
    assert_refused(code, err, "cannot be written")


def test_a_file_in_the_path_is_refused(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, err = run_demo(capsys, tmp_path / "file" / "report")
    assert_refused(code, err, "is a file, not a folder")


def test_staging_is_removed_with_the_parents_it_made_when_the_run_fails(tmp_path):
    out = tmp_path / "a" / "b" / "report"
    with pytest.raises(RuntimeError):
        with Staging(out) as staging:
            assert (staging.path / STAGING_MARKER).is_file()
            raise RuntimeError("the evaluation failed")
    assert list(tmp_path.iterdir()) == []


def test_commit_replaces_an_earlier_report_only(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    (out / "summary.md").write_text("old")
    with Staging(out) as staging:
        (staging.path / "metrics.json").write_text("{}")
        (staging.path / "summary.md").write_text("new")
        staging.commit()
    assert (out / "summary.md").read_text() == "new"
    assert not (out / STAGING_MARKER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_foreign_folder_named_like_the_staging_folder_is_not_deleted(tmp_path):
    out = tmp_path / "report"
    foreign = tmp_path / ".report.partial"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("not yours")
    with pytest.raises(UsageError, match="not left by this program"):
        with Staging(out):
            pass
    assert (foreign / "mine.txt").read_text() == "not yours"


def test_empty_folder_and_new_folder_are_accepted(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_out(empty) == empty
    assert check_out(tmp_path / "new" / "report") == tmp_path / "new" / "report"


def test_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    os.symlink(real, link)
    with pytest.raises(UsageError, match="symbolic link"):
        check_out(link)


NOISE_SCRIPT = """
import sys
if sys.argv[1] == "quiet":
    from evaluation.app import quiet_third_party
    quiet_third_party()
from evaluation.model import load
from evaluation.workload import EMBEDDED_MODEL
load(EMBEDDED_MODEL)
"""


def test_third_party_noise_is_filtered():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    # An earlier demo run in this process may have set DIFFUSERS_VERBOSITY; the children start clean.
    env = {k: v for k, v in os.environ.items() if k != "DIFFUSERS_VERBOSITY"}

    def stderr(mode):
        done = subprocess.run(
            [sys.executable, "-c", NOISE_SCRIPT, mode], cwd=root, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    noises = ("accelerate", "_C_mxfp8", "_pytree", "Unable to import `torchao`")
    loud = stderr("loud")
    assert any(noise in loud for noise in noises), loud  # the control: the noise exists unfiltered
    quiet = stderr("quiet")
    for noise in noises:
        assert noise not in quiet, quiet
