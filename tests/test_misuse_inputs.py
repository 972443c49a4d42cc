"""Inputs and user code under misuse: one policy, one line, exit 2, and never a wrong number.

Each case is a real misuse found by driving ``ginv`` as a careless user would: integer pixels,
a model without an input gradient, a zip bomb, a model that exits or prints, Unicode digits,
a damaged ``results.json``, absurd thread counts, and data in the wrong layout or with fewer
classes than the checkpoint. Command-line cases run ``main([...])`` in process (a few as real
subprocesses, where file descriptors matter) and check for exactly one line on stderr.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.test_report import synthetic_results
from torch import nn

from ginvariance.data import load_npz
from ginvariance.errors import DataError, ModelError, UndefinedMeasureWarning

FEWER_CLASSES = ["--checkpoint", "{f}/run/plain.safetensors", "--data", "{f}/three_classes.npz"]

USER_MODELS = """
import os
import sys

import torch
from torch import nn


class NoGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        with torch.no_grad():
            return self.head(x.flatten(1))


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(x.flatten(1).detach())


class Exits0(nn.Module):
    def forward(self, x):
        sys.exit(0)


class Exits3(nn.Module):
    def forward(self, x):
        sys.exit(3)


class _ExitsInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        sys.exit(4)


class ExitsInBackward(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(_ExitsInBackward.apply(x).flatten(1))


class Prints(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        print("a line from print() in forward")
        os.write(1, b"a line written to file descriptor 1\\n")
        return self.head(x.flatten(1))


print("a line printed when the module is imported")
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ginvariance.training import TrainConfig, train

    d = tmp_path_factory.mktemp("misuse")
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 8, 8), dtype=np.float32)
    y = np.arange(8) % 10
    np.savez(d / "ok.npz", x=x, y=y)
    np.savez(d / "uint8.npz", x=(x * 255).astype(np.uint8), y=y)
    np.savez(d / "huge_values.npz", x=np.where(x > 0.5, 1e300, x.astype(np.float64)), y=y)
    np.savez(d / "no_channel.npz", x=x[:, 0], y=y)
    np.savez(d / "channel_last.npz", x=rng.random((8, 28, 28, 1), dtype=np.float32), y=y)
    np.savez(d / "three_classes.npz", x=x, y=np.arange(8) % 3)
    (d / "text.npz").write_text("x,y\n0.5,1\n")
    (d / "usermodels_misuse.py").write_text(USER_MODELS)
    train(TrainConfig(model="cnn", limit=32, epochs=1, batch_size=32), d / "run")
    return d


def run_cli(argv: list[str], files: Path, tmp_path: Path, monkeypatch, capsys) -> tuple:
    """``main(argv)`` from an empty folder: (exit status, stdout, stderr)."""
    from ginvariance.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(files))
    args = [a.replace("{f}", str(files)) for a in argv]
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: object, out: str, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("ginv: error: "), err
    assert "Traceback" not in err and "\x1b" not in err and out == ""
    for word in words:
        assert word in err, (word, err)


# -- 5. one policy for integer pixels ------------------------------------------------------


def test_uint8_images_are_refused_alike_by_the_cli_and_the_api(
    files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """0..255 pixels are never measured as floats 0..255: both ways say to divide by 255."""
    import ginvariance
    from ginvariance.models import build_model

    argv = ["measure", "--model", "mlp", "--data", "{f}/uint8.npz", "--json"]
    code, out, err = run_cli(argv, files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, "uint8", "/ 255")
    with pytest.raises(DataError, match=r"uint8.*/ 255"):
        load_npz(files / "uint8.npz")
    x = torch.from_numpy(np.load(files / "uint8.npz")["x"])
    model = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(DataError, match=r"uint8.*/ 255"):
        ginvariance.measure(model, (x, torch.arange(8)), "c4")


# -- 6. sis of a model with no input gradient ----------------------------------------------


class _NoGrad(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.head(x.flatten(1))


class _Detached(_NoGrad):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1).detach())


class _DeadOnSome(nn.Module):
    """Input gradient zero on inputs below 10 (every ReLU off), non-zero on larger ones."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(x.flatten(1) - 10.0))


@pytest.mark.parametrize("model_cls", [_NoGrad, _Detached], ids=["no_grad", "detach"])
def test_sis_is_undefined_without_an_input_gradient(model_cls: type[nn.Module]) -> None:
    import ginvariance
    from ginvariance.metrics import InvarianceMetrics, SaliencyInvarianceSimilarity
    from ginvariance.metrics.functional import sis

    torch.manual_seed(0)
    model = model_cls()
    x = torch.rand(6, 1, 8, 8)
    with pytest.warns(UndefinedMeasureWarning, match="sis is undefined"):
        report = ginvariance.measure(model, (x, torch.arange(6)), "c4", shifts=["uniform"])
    result = report.to_dict()
    assert result["id"]["sis"] is None and result["shift"]["uniform"]["sis"] is None
    assert result["id"]["pdi"] > 0  # the other measures are still measured
    with pytest.warns(UndefinedMeasureWarning):
        assert math.isnan(float(sis(model, x, "c4")))
    metric = InvarianceMetrics(model, "c4")
    metric.update(x[:3])
    metric.update(x[3:])
    with pytest.warns(UndefinedMeasureWarning):
        assert math.isnan(float(metric.compute()["sis"]))
    one = SaliencyInvarianceSimilarity(model, "c4")
    one.update(x)
    with pytest.warns(UndefinedMeasureWarning):
        assert math.isnan(float(one.compute()))


def test_sis_stays_defined_when_only_some_samples_have_zero_gradients() -> None:
    """Per sample, two zero maps are still equal (cos 1): only a model with no input gradient
    on any sample is undefined."""
    from ginvariance.metrics import invariance_suite

    torch.manual_seed(0)
    x = torch.zeros(2, 1, 8, 8)
    x[1] = 20.0  # every ReLU on for this sample, all off for the first
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMeasureWarning)
        model = _DeadOnSome()
        result = invariance_suite(model, x, "c4")
        alive = invariance_suite(model, x[1:], "c4")["sis"]
    assert isinstance(alive, float) and alive < 0.99  # W's rows are not rotation-invariant
    assert result["sis"] == pytest.approx((1.0 + alive) / 2)  # the dead sample counts 1


def test_cli_reports_an_undefined_sis_as_null_with_one_warning_line(
    files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = ["measure", "--model", "usermodels_misuse:NoGrad", "--data", "{f}/ok.npz", "--json"]
    code, out, err = run_cli([*argv, "--shift", "uniform"], files, tmp_path, monkeypatch, capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["id"]["sis"] is None and result["shift"]["uniform"]["sis"] is None
    lines = [line for line in err.splitlines() if line.startswith("ginv: warning:")]
    assert len(lines) == 1 and "sis is undefined" in lines[0], err
    assert "Traceback" not in err
    # the table shows a dash for it
    argv = ["measure", "--model", "usermodels_misuse:Detached", "--data", "{f}/ok.npz"]
    code, out, err = run_cli(argv, files, tmp_path, monkeypatch, capsys)
    assert code == 0 and "—" in out.splitlines()[-2], out


def test_html_report_shows_an_undefined_sis(tmp_path: Path) -> None:
    from ginvariance.report import render_report

    results = synthetic_results()
    results["models"]["plain"]["id"]["sis"] = None
    page = render_report(results, tmp_path).read_text(encoding="utf-8")
    assert "<td>—" in page


# -- 7. a size cap on decompressed arrays --------------------------------------------------


def test_zip_bomb_is_refused_from_its_headers_before_decompressing(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, x=np.zeros((64, 1, 512, 512), np.float32), y=np.zeros(64, int))
    assert bomb.stat().st_size < 2**20  # 64 MiB of zeros in under 1 MiB
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"too large to load.*64\.0 MiB.*--max-data-gib"):
            load_npz(bomb, max_bytes=16 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MiB allocated before refusing"
    assert load_npz(bomb, max_bytes=2**27).x.shape == (64, 1, 512, 512)  # a higher cap


def test_a_member_larger_than_its_npy_header_claims_is_refused(tmp_path: Path) -> None:
    """The zip header's decompressed size counts too, not only the shape in the .npy header."""
    path = tmp_path / "padded.npz"
    np.savez(path, x=np.zeros((2, 4), np.float32), y=np.zeros(2, int))
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["x.npy"] += bytes(8 * 2**20)  # 8 MiB after a header that claims 32 bytes
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(DataError, match="too large to load"):
        load_npz(path, max_bytes=2**20)


def test_cli_cap_on_data_size(files: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, x=np.zeros((16, 1, 256, 256), np.float32), y=np.zeros(16, int))
    argv = ["measure", "--model", "mlp", "--data", str(bomb), "--max-data-gib", "0.001"]
    code, out, err = run_cli(argv, files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, "too large to load", "4.0 MiB", "--max-data-gib")
    code, out, err = run_cli([*argv[:-1], "0"], files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, "--max-data-gib", "positive")


# -- 9. user code: exits, exceptions and prints -------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("usermodels_misuse:Exits0", ["sys.exit(0)", "must return"]),
        ("usermodels_misuse:Exits3", ["sys.exit(3)", "must return"]),
        ("usermodels_misuse:ExitsInBackward", ["sys.exit(4)", "usermodels_misuse"]),
    ],
)
def test_a_model_that_exits_is_one_line_and_exit_2(
    spec: str, words: list[str], files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    output = tmp_path / "r.json"
    argv = ["measure", "--model", spec, "--data", "{f}/ok.npz", "--output", str(output)]
    code, out, err = run_cli(argv, files, tmp_path, monkeypatch, capsys)
    err = "\n".join(line for line in err.splitlines() if "printed when" not in line) + "\n"
    assert_one_line_error(code, out, err, *words)
    assert not output.exists()


def test_api_turns_sys_exit_in_forward_into_a_model_error(files: Path, monkeypatch) -> None:
    import ginvariance

    class Exits(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sys.exit(0)

    with pytest.raises(ModelError, match=r"sys.exit\(0\)"):
        ginvariance.measure(Exits(), torch.rand(2, 1, 4, 4), "c4")


def test_what_a_model_prints_goes_to_stderr_and_json_stays_valid(
    files: Path, tmp_path: Path
) -> None:
    """print() and writes to file descriptor 1, at import and in forward: stdout is JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = ["measure", "--model", "usermodels_misuse:Prints", "--data", f"{files}/ok.npz"]
    proc = subprocess.run(
        [sys.executable, "-m", "ginvariance.cli", *argv, "--json"],
        cwd=files,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"]["pdi"] >= 0
    for line in ("printed when the module", "print() in forward", "file descriptor 1"):
        assert line in proc.stderr and line not in proc.stdout


def test_stdout_is_restored_after_user_code(capfd) -> None:
    from ginvariance.usercode import stdout_to_stderr

    with stdout_to_stderr():
        print("inside", flush=True)
        os.write(1, b"inside-fd\n")
    print("outside", flush=True)
    os.write(1, b"outside-fd\n")
    out, err = capfd.readouterr()
    assert out == "outside\noutside-fd\n" and err == "inside\ninside-fd\n"


# -- 10. tracebacks turned into one line ---------------------------------------------------


@pytest.mark.parametrize("seeds", ["²", "0,١", "0,0"])
def test_sweep_seeds_in_other_digits_are_one_line(
    seeds: str, files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = ["sweep", "--out", str(tmp_path / "sw"), "--seeds", seeds]
    code, out, err = run_cli(argv, files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, "--seeds")
    assert not (tmp_path / "sw").exists()


def test_bench_refuses_absurd_thread_counts(
    files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = ["bench", "--threads", "1,100000", "--skip-tmeasures", "--skip-rss", "--n", "4"]
    code, out, err = run_cli(argv, files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, "--threads 100000", "256")


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r["models"]["plain"]["id"].update(pdi="0.1"),
        lambda r: r["models"]["plain"]["shift"]["uniform"].update(sis="high"),
        lambda r: r["models"]["augmented"]["spectral"].update(eps=[]),
        lambda r: r["models"]["augmented"]["spectral"].update(eps=["a"]),
        lambda r: r["models"]["augmented"]["spectral"].update(sensitivity_random=[1.0]),
        lambda r: r["models"]["augmented"]["spectral"].update(singular_values=["x"]),
        lambda r: r["models"]["regularized"]["std"]["id"].update(li="x"),
        lambda r: r["claims"]["C1"].update(statement=3),
        lambda r: r.update(seeds="0"),
    ],
    ids=[
        "string-measure",
        "string-shift-measure",
        "empty-eps",
        "string-eps",
        "short-sensitivity",
        "string-singular-value",
        "string-std",
        "claim-statement",
        "seeds",
    ],
)
def test_report_of_damaged_results_is_one_line(
    damage, files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from ginvariance.io import atomic_write_json

    results = synthetic_results()
    damage(results)
    study = tmp_path / "study"
    study.mkdir()
    atomic_write_json(study / "results.json", results)
    code, out, err = run_cli(["report", str(study)], files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, "damaged", "ginv run")
    assert sorted(p.name for p in study.iterdir()) == ["results.json"]


# -- 12. messages that point the right way -------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words", "wrong"),
    [
        (
            ["--model", "mlp", "--data", "{f}/huge_values.npz"],
            ["too large for float32", "rescale"],
            "NaN",
        ),
        (
            ["--model", "mlp", "--data", "{f}/text.npz"],
            ["not an .npz archive", "numpy.savez"],
            "pickle",
        ),
        (
            ["--checkpoint", "{f}/run/plain.safetensors", "--data", "{f}/no_channel.npz"],
            ["(1, 8, 8)", "add a channel axis", "x[:, None]"],
            "sample_shape=(8, 8)",
        ),
        (
            ["--model", "cnn", "--data", "{f}/channel_last.npz"],
            ["channel-last", "x.transpose(0, 3, 1, 2)"],
            "square",
        ),
        (
            ["--model", "cnn", *FEWER_CLASSES],
            ["3 classes", "counted from the labels", "--num-classes"],
            "the model it was trained with",
        ),
    ],
    ids=["float64-overflow", "text-file", "no-channel-axis", "channel-last", "fewer-classes"],
)
def test_messages_name_what_happened_and_the_fix(
    argv: list[str], words: list[str], wrong: str, files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    code, out, err = run_cli(["measure", *argv], files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, *words)
    assert wrong not in err, err


def test_a_whole_model_pt_is_one_clean_line(
    files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """torch's refusal carries terminal colour codes; none reaches the terminal."""
    from ginvariance.models import build_model

    whole = tmp_path / "whole.pt"
    torch.save(build_model("mlp", (1, 8, 8), 10), whole)
    argv = ["measure", "--model", "mlp", "--checkpoint", str(whole), "--data", "{f}/ok.npz"]
    code, out, err = run_cli(argv, files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, "state_dict")


def test_num_classes_loads_a_checkpoint_on_data_missing_classes(
    files: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = ["measure", "--model", "cnn", *FEWER_CLASSES, "--json"]
    code, out, err = run_cli([*argv, "--num-classes", "10"], files, tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert 0.0 <= json.loads(out)["id"]["accuracy"] <= 1.0
    code, out, err = run_cli([*argv, "--num-classes", "2"], files, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, out, err, "label 2", "--num-classes 3")


def test_channel_last_and_missing_channel_axes_in_the_api() -> None:
    import ginvariance
    from ginvariance.errors import GroupActionError
    from ginvariance.groups import get_group
    from ginvariance.models import build_model

    with pytest.raises(DataError, match=r"channel-last.*permute\(0, 3, 1, 2\)"):
        ginvariance.measure(nn.Flatten(), torch.rand(2, 28, 28, 3), "flip")
    with pytest.raises(GroupActionError, match="channel-last"):
        get_group("c4", (28, 28, 1))
    cnn = build_model("cnn", (1, 8, 8), 10)
    with pytest.raises(ModelError, match=r"add a channel axis: x\[:, None\] gives \(N, 1, 8, 8\)"):
        ginvariance.measure(cnn, torch.rand(2, 8, 8), "c4")


def test_lightning_monitor_leaves_an_undefined_sis_out_of_the_logs(tmp_path: Path) -> None:
    """A module that detaches its input trains, and its undefined sis is not logged as a
    number (Lightning cannot log None); the history keeps it as None."""
    pl = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    from ginvariance.integrations.lightning import InvarianceMonitor

    class Detaching(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x.detach().flatten(1))

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            pass

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.rand(16, 1, 8, 8), torch.arange(16) % 10), batch_size=8)
    monitor = InvarianceMonitor("c4", max_samples=8)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        callbacks=[monitor],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        with pytest.warns(UndefinedMeasureWarning):
            trainer.fit(Detaching(), data, data)
    assert monitor.last is not None and monitor.last["id"]["sis"] is None
    assert "ginv/sis" not in trainer.callback_metrics and "ginv/pdi" in trainer.callback_metrics
