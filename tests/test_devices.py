"""Devices, precision, the ResNet-18-style model and image folders (CPU-exercisable paths)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ginvariance import devices
from ginvariance.devices import (
    check_precision,
    memory_budget,
    model_device,
    move,
    resolve_device,
)
from ginvariance.errors import DataError, DeviceError
from ginvariance.metrics import InvarianceMetrics, measure
from ginvariance.models import ResNet, build_model

CPU = torch.device("cpu")


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> str:
    from ginvariance.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ginv: error:") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# -- device names ---------------------------------------------------------------------------
def test_cpu_and_auto_resolve_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto") == CPU and resolve_device(None) == CPU
    assert resolve_device(torch.device("cpu")) == CPU


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("tpu", "unknown device"),
        ("cuda", "no CUDA GPU"),
        ("cuda:1", "no CUDA GPU"),
        ("", "unknown"),
    ],
)
def test_unknown_or_absent_devices_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, needle: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=needle):
        resolve_device(name)


def test_cuda_index_past_the_last_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"2 CUDA device\(s\), cuda:0..cuda:1"):
        resolve_device("cuda:2")


def test_mps_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="mps is not available"):
        resolve_device("mps")


# -- where a model is, and moving data there -------------------------------------------------
def test_model_on_several_devices_is_refused_in_one_line() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    model.register_buffer("elsewhere", torch.zeros(1, device="meta"))
    with pytest.raises(DeviceError, match=r"several devices \(cpu, meta\)") as info:
        measure(model, torch.rand(2, 2, 2), "c4")
    assert "\n" not in str(info.value)
    with pytest.raises(DeviceError, match="several devices"):
        InvarianceMetrics(model, "c4")
    assert model_device(nn.ReLU()) == CPU  # no parameters: the CPU


class _Recorder(nn.Module):
    """A model that lives on ``meta`` and records where its inputs arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("where", torch.zeros(1, device="meta"))
        self.seen: list[torch.device] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.device)
        return torch.zeros(x.shape[0], 3)  # logits the measures can reduce on the CPU


def test_data_on_another_device_is_moved_to_the_model() -> None:
    model = _Recorder()
    x, y = torch.rand(6, 1, 4, 4), torch.zeros(6, dtype=torch.long)
    report = measure(model, (x, y), "c4", saliency=False, chunk_size=4)
    assert model.seen == [torch.device("meta")] * 2  # every chunk arrived on the model's device
    assert report.id["n_samples"] == 6
    metric = InvarianceMetrics(model, "c4", saliency=False, chunk_size=4)
    assert metric.count.device.type == "meta"  # the float64 sums start where the model is


def test_move_keeps_structure_and_same_device_tensors() -> None:
    x = torch.rand(2, 3)
    assert move(x, CPU) is x
    moved = move((x, [x], {"a": x, "b": 1}), torch.device("meta"))
    assert moved[0].device.type == "meta" and moved[1][0].device.type == "meta"
    assert moved[2]["a"].device.type == "meta" and moved[2]["b"] == 1
    assert isinstance(moved[1], list)


def test_memory_budget_follows_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory_budget(CPU) == devices.HOST_BUDGET
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 * 2**30, 140 * 2**30))
    assert memory_budget(torch.device("cuda")) == int(80 * 2**30 * devices.CUDA_BUDGET_SHARE)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 140 * 2**30))
    assert memory_budget(torch.device("cuda")) == devices.HOST_BUDGET  # never below the CPU's


# -- precision ------------------------------------------------------------------------------
def test_precision_names_and_unsupported_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_precision("fp32", CPU) is None
    assert check_precision("bf16", CPU) is torch.bfloat16
    with pytest.raises(DeviceError, match="unknown precision 'fp8'"):
        check_precision("fp8", CPU)
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)
    with pytest.raises(DeviceError, match="does not support on cpu; use --precision fp32"):
        check_precision("fp16", CPU)


def test_bf16_autocast_stays_within_the_documented_tolerance() -> None:
    """The README's tolerance of bf16 against fp32 (a float32 model, measures in float64)."""
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10).eval()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    fp32 = measure(model, (x, y), "c4").id
    bf16 = measure(model, (x, y), "c4", precision="bf16").id
    assert bf16 != fp32  # the forward did run in bfloat16
    assert abs(bf16["pdi"] - fp32["pdi"]) <= 2e-3  # type: ignore[operator]
    assert abs(bf16["li"] - fp32["li"]) <= 2e-2  # type: ignore[operator]
    assert abs(bf16["sis"] - fp32["sis"]) <= 2e-2  # type: ignore[operator]
    for key in ("accuracy", "orbit_accuracy", "orbit_consistency"):
        assert abs(bf16[key] - fp32[key]) <= 0.1, key  # type: ignore[operator]


# -- the command line -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--device", "tpu"], ("unknown device 'tpu'",)),
        (["--device", "cuda:0"], ("--device cuda:0 is not available",)),
        (["--precision", "fp8"], ("unknown precision 'fp8'",)),
    ],
)
def test_measure_bad_device_or_precision_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    needles: tuple[str, ...],
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "result.json"
    args = ["measure", "--model", "cnn", "--dataset", "digits", "--limit", "4", "--output"]
    _one_line_exit_2(capsys, [*args, str(out), *extra], *needles)
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "run", "bench"])
def test_other_commands_refuse_an_absent_device(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    args = {
        "train": ["train", "--out", str(out), "--epochs", "1"],
        "run": ["run", "--out", str(out), "--quick"],
        "bench": ["bench", "--n", "4", "--output", str(out), "--skip-rss"],
    }[command]
    _one_line_exit_2(capsys, [*args, "--device", "cuda"], "not available")
    assert not out.exists()


# -- ResNet-18-style model ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (28, 28)])
def test_resnet_maps_images_to_logits(shape: tuple[int, ...]) -> None:
    model = build_model("resnet", shape, 10, width=4).eval()
    assert isinstance(model, ResNet)
    assert model(torch.rand(2, *shape)).shape == (2, 10)


def test_resnet18_layout_and_parameter_count() -> None:
    model = build_model("resnet", (3, 32, 32), 10)
    blocks = [m for m in model.stages]
    assert len(blocks) == 8 and model.head.in_features == 512
    assert sum(p.numel() for p in model.parameters()) == 11_173_962  # CIFAR ResNet-18


def test_resnet_refuses_signals() -> None:
    from ginvariance.errors import ModelError

    with pytest.raises(ModelError, match="'resnet' takes images"):
        build_model("resnet", (1, 40), 10, group="cyclic1d")


# -- image folders --------------------------------------------------------------------------
def _write_images(root: Path, size: int = 32, mode: str = "RGB", per_class: int = 2) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            suffix = ".png" if i % 2 == 0 else ".jpg"
            Image.fromarray(pixels, mode=mode).save(root / name / f"{label}-{i}{suffix}")


def test_image_folder_loads_by_class(tmp_path: Path) -> None:
    from PIL import Image

    from ginvariance.data.images import load_image_folder

    _write_images(tmp_path)
    ds = load_image_folder(tmp_path, num_workers=1)
    assert tuple(ds.x.shape) == (4, 3, 32, 32) and ds.x.dtype == torch.float32
    assert ds.y.tolist() == [0, 0, 1, 1] and ds.num_classes == 2
    png = np.asarray(Image.open(tmp_path / "cat" / "0-0.png"), dtype=np.float32) / 255
    assert torch.equal(ds.x[0], torch.from_numpy(png).permute(2, 0, 1))
    assert 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0


def test_image_folder_of_grey_images(tmp_path: Path) -> None:
    from ginvariance.data.images import load_image_folder

    _write_images(tmp_path, size=28, mode="L")
    assert tuple(load_image_folder(tmp_path).x.shape) == (4, 1, 28, 28)


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_image_is_one_line(tmp_path: Path, workers: int) -> None:
    from ginvariance.data.images import load_image_folder

    _write_images(tmp_path)
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png' cannot be read") as info:
        load_image_folder(tmp_path, num_workers=workers, batch_size=2)
    assert "\n" not in str(info.value)


def test_differently_sized_image_is_one_line(tmp_path: Path) -> None:
    from PIL import Image

    from ginvariance.data.images import load_image_folder

    _write_images(tmp_path)
    Image.new("RGB", (16, 16)).save(tmp_path / "dog" / "small.png")
    with pytest.raises(DataError, match=r"small.png' is 16×16 colour, the first image 32×32"):
        load_image_folder(tmp_path)


def test_folder_without_classes(tmp_path: Path) -> None:
    from ginvariance.data.images import load_image_folder

    with pytest.raises(DataError, match="no class folders"):
        load_image_folder(tmp_path)


def test_measure_resnet_on_an_image_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ginvariance.cli import main

    _write_images(tmp_path / "images")
    out = tmp_path / "result.json"
    main(
        [
            "measure", "--model", "resnet", "--data", str(tmp_path / "images"), "--group", "c4",
            "--json", "--output", str(out), "--device", "cpu", "--precision", "fp32",
        ]
    )  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["id"]["n_samples"] == 4 and 0 <= printed["id"]["pdi"] <= np.log(4)


def test_measure_refuses_a_bad_image_folder_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_images(tmp_path / "images")
    (tmp_path / "images" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "result.json"
    args = ["measure", "--model", "resnet", "--data", str(tmp_path / "images"), "--output"]
    _one_line_exit_2(capsys, [*args, str(out)], "broken.jpg", "cannot be read")
    assert not out.exists()


@pytest.mark.parametrize("gpus", [-1, float("nan"), True])
def test_sweep_refuses_bad_gpus_per_trial_before_writing(tmp_path: Path, gpus: object) -> None:
    from ginvariance.errors import ConfigError
    from ginvariance.experiments.sweep import SweepConfig, run_sweep

    with pytest.raises(ConfigError, match="gpus_per_trial must be a number"):
        run_sweep(SweepConfig(), tmp_path / "sweep", gpus_per_trial=gpus)  # type: ignore[arg-type]
    assert not (tmp_path / "sweep").exists()
