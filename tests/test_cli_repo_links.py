"""The repository is self-contained: every relative link in its Markdown resolves inside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def tracked_files(pattern: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", pattern], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def relative_links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold no links
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def test_link_pattern_finds_relative_links_only():
    text = "[a](docs/X.md) ![b](p.png) [c](https://x.org) [d](#anchor) [e](../y.md#s) ```[f](no.md)```"
    assert relative_links(text) == ["docs/X.md", "p.png", "../y.md#s"]


@pytest.mark.parametrize("md", tracked_files("*.md"), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_resolve_inside_the_repository(md):
    for target in relative_links(md.read_text(encoding="utf-8")):
        resolved = (md.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{md.name} links outside the repository: {target}"
        assert resolved.exists(), f"{md.name} links to a missing file: {target}"


def test_no_file_cites_the_external_spec_folder():
    offenders = [str(p.relative_to(ROOT)) for suffix in ("*.md", "*.py", "Makefile", "*.toml")
                 for p in tracked_files(suffix)
                 if p.name != Path(__file__).name and "shared/spec" in p.read_text(encoding="utf-8")]
    assert offenders == [], f"these files cite the out-of-repository spec folder: {offenders}"


def test_the_contract_documents_exist():
    for doc in ("docs/NUMERICS.md", "docs/ALGORITHMS.md"):
        assert (ROOT / doc).is_file()
