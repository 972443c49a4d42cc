"""The study's report in a real browser: Debian's headless Chromium loads every figure.

A tiny real study (one epoch on 64 samples) writes ``report.html`` and its PNGs. The folder is
served on localhost; a wrapper page (the report itself has no script) loads the report in an
iframe, reads ``naturalWidth`` of each ``<img>`` and writes the result into its DOM, which
Chromium prints with ``--dump-dom``. A second Chromium call saves a screenshot of the report.

Without Chromium (a user's machine, where only root can install it) these tests skip with a
one-line reason; under ``CI=true`` a missing Chromium fails them, since ``.ci/run`` installs it
(``apt-get install -y chromium``).
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ginvariance.experiments import REPORT_FILE, StudyConfig, load_saliency, run_study
from ginvariance.experiments.sweep import SWEEP_FIGURE, SWEEP_PAGE, aggregate
from ginvariance.report import FIGURES, render_report
from ginvariance.report.sweep_page import render_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WINDOW = (1280, 2000)
CHECK_PAGE = "check.html"
# Inspects the report's images once the iframe has loaded (images included) and writes
# {"title", "images": [{src, complete, naturalWidth, naturalHeight}]} into <pre id=result>.
CHECK_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>image check</title></head><body>
<pre id="result">pending</pre>
<iframe id="page" src="{src}" width="1280" height="2000"></iframe>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var doc = this.contentDocument;
  var images = Array.prototype.map.call(doc.images, function (img) {{
    return {{src: img.getAttribute("src"), complete: img.complete,
             naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight}};
  }});
  document.getElementById("result").textContent =
    JSON.stringify({{title: doc.title, images: images}});
}});
</script>
</body></html>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    reason = (
        "headless Chromium is needed to check the report in a real browser and was not "
        "found; install it with: apt-get update && apt-get install -y chromium"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) study and its report: four models, one epoch, 16 test samples."""
    chromium()  # fail at once, before training, when there is no browser
    out = tmp_path_factory.mktemp("study")
    config = StudyConfig(epochs=1, limit=64, n_measure=16, n_spectral=4, shifts=("uniform",),
                         eps=(1e-2,), n_directions=2)  # fmt: skip
    results = run_study(config, out)
    render_report(results, out, load_saliency(out))
    return out


@contextlib.contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on a free localhost port; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture()
def served(tmp_path: Path, report_dir: Path) -> Iterator[tuple[str, Path]]:
    """The report's folder copied to ``tmp_path/site`` and served on localhost."""
    site = tmp_path / "site"
    shutil.copytree(report_dir, site, ignore=shutil.ignore_patterns("checkpoints"))
    with serve(site) as base:
        yield base, site


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def page_result(dom: str) -> dict:
    """The JSON that a check page wrote into its ``<pre id="result">``, from the dumped DOM."""
    match = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert match, f"the check page did not render: {dom[:500]}"
    text = html.unescape(match.group(1))
    assert text != "pending", "the report did not finish loading within the time budget"
    return json.loads(text)


def images_in_browser(base: str, site: Path, page: str, profile: Path) -> dict:
    """What Chromium sees of the ``<img>`` elements of ``page`` (served from ``site``)."""
    (site / CHECK_PAGE).write_text(CHECK_HTML.format(src=page), encoding="utf-8")
    dom = run_chromium(
        profile, "--virtual-time-budget=5000", "--dump-dom", f"{base}/{CHECK_PAGE}"
    ).stdout
    return page_result(dom)


def test_every_image_of_the_report_loads_in_chromium(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    base, site = served
    seen = images_in_browser(base, site, REPORT_FILE, tmp_path / "profile")
    assert seen["title"].startswith("Genuine vs learned invariance")
    sources = [img["src"] for img in seen["images"]]
    assert sorted(sources) == sorted(FIGURES.values()), sources
    for img in seen["images"]:
        assert img["complete"] and img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
    assert "<script" not in (site / REPORT_FILE).read_text(encoding="utf-8")


def test_the_check_sees_a_broken_image(served: tuple[str, Path], tmp_path: Path) -> None:
    """The same check on a copy of the report with one figure missing reports it as not loaded."""
    base, site = served
    broken = FIGURES["measures"]
    (site / broken).rename(site / "moved.png")
    seen = images_in_browser(base, site, REPORT_FILE, tmp_path / "profile")
    widths = {img["src"]: img["naturalWidth"] for img in seen["images"]}
    assert widths[broken] == 0
    assert all(w > 0 for src, w in widths.items() if src != broken)


def test_screenshot_of_the_report(served: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = served
    shot = tmp_path / "report-screenshot.png"
    run_chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"{base}/{REPORT_FILE}",
    )
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == WINDOW
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels[..., :3].std() > 0.05, "the screenshot is blank"


def test_the_sweep_page_loads_its_figure(tmp_path: Path) -> None:
    """``sweep.html`` of ``ginv sweep`` (drawn from made-up trial numbers) in the same browser."""
    trials = []
    for seed in (0, 1):
        for mode, model, lam, pdi in [("weight-tied", "weight-tied", None, 0.0),
                                      ("augmented", "cnn", 0.0, 0.1 + seed / 100),
                                      ("regularized", "cnn", 1.0, 0.01 + seed / 100)]:  # fmt: skip
            block = {"accuracy": 0.9, "orbit_accuracy": 0.8, "pdi": pdi, "li": pdi, "sis": 0.9}
            trials.append({"models": {mode: {"id": block, "shift": {"uniform": block}}},
                           "group": "c4", "dataset": "digits", "seed": seed, "lam": lam,
                           "model": model, "mode": mode})  # fmt: skip
    site = tmp_path / "site"
    render_sweep({"entries": aggregate(trials), "confidence": 0.95}, site)
    with serve(site) as base:
        seen = images_in_browser(base, site, SWEEP_PAGE, tmp_path / "profile")
    assert [img["src"] for img in seen["images"]] == [SWEEP_FIGURE]
    assert seen["images"][0]["naturalWidth"] > 0


# The report's first screen: what a reader sees at 1280×800 before scrolling. Every table row
# and text line wholly inside it is written into <pre id=result> as JSON.
FIRST_SCREEN_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>first screen</title>
<style>body {{ margin: 0; }} iframe {{ border: 0; }}</style></head><body>
<iframe id="page" src="{src}" width="1280" height="800"></iframe>
<pre id="result">pending</pre>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var doc = this.contentDocument, height = 800;
  function inside(el) {{
    var r = el.getBoundingClientRect();
    return r.height > 0 && r.top >= 0 && r.bottom <= height;
  }}
  var rows = Array.prototype.filter.call(doc.querySelectorAll("tr"), inside)
    .map(function (tr) {{ return tr.innerText.replace(/\\s+/g, " ").trim(); }});
  var walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT), node, text = [];
  while ((node = walker.nextNode())) {{
    var range = doc.createRange();
    range.selectNodeContents(node);
    var r = range.getBoundingClientRect();
    if (r.height > 0 && r.top >= 0 && r.bottom <= height) text.push(node.textContent);
  }}
  document.getElementById("result").textContent =
    JSON.stringify({{rows: rows, text: text.join(" ").replace(/\\s+/g, " ")}});
}});
</script>
</body></html>
"""


def first_screen(base: str, site: Path, page: str, profile: Path) -> dict:
    (site / "first.html").write_text(FIRST_SCREEN_HTML.format(src=page), encoding="utf-8")
    dom = run_chromium(
        profile,
        "--virtual-time-budget=5000",
        "--window-size=1280,800",
        "--dump-dom",
        f"{base}/first.html",
    ).stdout
    return page_result(dom)


def _shown(v: float) -> str:
    """A number as the report prints it (four decimals, or three significant in e-notation)."""
    return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 else ("0" if v == 0 else f"{v:.3e}")


def test_first_screen_shows_every_verdict_with_its_numbers(
    report_dir: Path, tmp_path: Path
) -> None:
    """At 1280×800 the report opens on every claim's verdict, its deciding quantity's value,
    its 95% interval and its threshold; with several seeds, the interval's bounds."""
    results = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
    several = json.loads(json.dumps(results))  # the same study, as if run on three seeds
    several["seeds"] = [0, 1, 2]
    for claim in several["claims"].values():
        d = claim["deciding"]
        d["ci"] = [d["mean"] - 0.125, d["mean"] + 0.25]
        d["values"] = [d["mean"]] * 3
    for name, res in (("one", results), ("three", several)):
        site = tmp_path / name
        render_report(res, site)
        with serve(site) as base:
            seen = first_screen(base, site, REPORT_FILE, tmp_path / f"profile-{name}")
        verdicts = [c.get("verdict") for c in res["claims"].values()]
        assert f"{verdicts.count('holds')} of {len(verdicts)} claims hold" in seen["text"]
        for key, claim in res["claims"].items():
            row = next((r for r in seen["rows"] if r.split(" ")[0] == key), None)
            assert row is not None, f"claim {key} is not on the first screen: {seen['rows']}"
            d = claim["deciding"]
            assert claim["verdict"] in row, row
            assert _shown(d["mean"]) in row, (row, d["mean"])
            assert f"{d['threshold']:g}" in row, (row, d["threshold"])
            if d["ci"]:
                assert f"[{_shown(d['ci'][0])}, {_shown(d['ci'][1])}]" in row, row
            else:
                assert "one seed" in row, row
        if name == "three":
            assert "over 3 seeds" in seen["text"]
