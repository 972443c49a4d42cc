"""The README stands alone: every file it links exists, and its example is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_file_the_readme_links_exists() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [t for t in re.findall(r"\]\(([^)#\s]+)\)", text) if "://" not in t]
    assert links, "the README links no file"
    missing = [t for t in links if not (ROOT / t).exists()]
    assert not missing, missing


def test_readme_commands_use_current_flags() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "ginv train --mode" not in text
    assert "examples/own_model/model.py:build" in text
    assert (ROOT / "scripts" / "readme_numbers.py").exists()
