"""Image files arranged by class, ``ROOT/CLASS/IMAGE.png`` (``torchvision``'s ``ImageFolder``
layout), read into one float32 tensor ``(N, C, H, W)`` in ``[0, 1]`` (``C`` = 1 for greyscale,
3 for colour).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ginvariance.data.datasets import ArrayDataset
from ginvariance.errors import DataError

#: The file suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """The ``(file, label)`` pairs under ``root`` and the class names, sorted.

    Raises :class:`DataError` when ``root`` is not a folder, holds no class folders, or a
    class folder holds no image.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"--data {str(root)!r} is not a folder of class folders of images")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"folder {str(root)!r} holds no class folders; arrange images as "
            "ROOT/CLASS/IMAGE.png, one folder per class"
        )
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(
            p
            for p in (base / name).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not found:
            raise DataError(
                f"class folder {str(base / name)!r} holds no .png/.jpg/.jpeg image; add images "
                "or remove the folder"
            )
        files.extend((p, label) for p in found)
    return files, classes


class ImageFiles(Dataset):
    """The images of :func:`image_files`, decoded one by one: ``(x (C, H, W), label)``.

    ``x`` is float32 in ``[0, 1]``; an image that Pillow cannot read raises
    :class:`DataError` naming the file.
    """

    def __init__(self, files: list[tuple[Path, int]]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, UnidentifiedImageError

        path, label = self.files[i]
        try:
            with Image.open(path) as opened:
                opened.load()
                img: Image.Image = opened
                if img.mode not in ("L", "RGB"):
                    img = img.convert("RGB" if "A" in img.mode or img.mode == "P" else "L")
                array = np.asarray(img, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:100]
            raise DataError(
                f"image {str(path)!r} cannot be read ({reason}); replace or remove it"
            ) from None
        x = torch.from_numpy(array.copy()).float().div_(255)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        return x.contiguous(), label


def load_image_folder(
    root: str | Path, *, num_workers: int | None = None, batch_size: int = 64
) -> ArrayDataset:
    """Load ``ROOT/CLASS/IMAGE`` files into an :class:`ArrayDataset` ``(N, C, H, W)``.

    Parameters
    ----------
    root:
        The folder of class folders.
    num_workers:
        Decoding processes of the ``DataLoader`` (``None``: up to 4, at most the CPUs).
    batch_size:
        Images per decoded batch.

    Raises
    ------
    DataError
        Not a folder, no classes or images, an image Pillow cannot read, or an image of
        another size or number of channels than the first one (named in the message).
    """
    files, classes = image_files(root)
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if len(files) >= 4 * batch_size else 0
    loader = DataLoader(
        ImageFiles(files),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=list,  # sizes are checked one by one, for a message naming the file
    )
    xs: list[torch.Tensor] = []
    labels: list[int] = []
    shape: tuple[int, ...] | None = None
    try:
        for batch in loader:
            for x, label in batch:
                if shape is None:
                    shape = tuple(x.shape)
                elif tuple(x.shape) != shape:
                    path = files[len(xs)][0]
                    raise DataError(
                        f"image {str(path)!r} is {_describe(x.shape)}, the first image "
                        f"{_describe(shape)}; every image must have the same size and channels "
                        "(resize or convert them first)"
                    )
                xs.append(x)
                labels.append(label)
    except DataError as exc:
        # a worker's DataError arrives re-raised with the worker's traceback in its message:
        # keep the one line of the original
        message = str(exc)
        if "DataLoader worker" in message and "DataError: " in message:
            raise DataError(message.rsplit("DataError: ", 1)[1].strip().splitlines()[0]) from None
        raise
    y = torch.tensor(labels, dtype=torch.int64)
    return ArrayDataset(torch.stack(xs), y, len(classes), name=Path(root).name or str(root))


def _describe(shape: Any) -> str:
    c, h, w = shape
    kind = {1: "greyscale", 3: "colour"}.get(int(c), f"{c}-channel")
    return f"{w}×{h} {kind}"


__all__ = ["IMAGE_SUFFIXES", "ImageFiles", "image_files", "load_image_folder"]
