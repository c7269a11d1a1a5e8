"""A dataset over a list of image files with labels and optional bounding boxes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from errors import RunError


def load_rgb(path: Path) -> Image.Image:
    """Open an image as RGB; an unreadable file raises ``RuntimeError`` naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise RunError(
            f"Cannot read image {path}: {err}. Replace the file, or pass skip_corrupt=True to drop "
            "unreadable images."
        ) from err


def find_unreadable(files: Iterable[Path]) -> list[Path]:
    """The files among ``files`` that PIL cannot open and verify (header and structure)."""
    bad: list[Path] = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.verify()
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
            bad.append(path)
    return bad


class ImageListDataset(Dataset):
    """Images from ``files[indices]`` with ``labels``; optionally a box mask per image.

    Items: ``(image [3, s, s], label)`` or, with ``boxes`` (``[N, 4]`` x, y, w, h in original
    pixels) and ``mask_size``, ``(image, label, mask [1, s, s] bool)`` with the box scaled to the
    resized image (valid with the plain ``Resize((s, s))`` evaluation transform only).
    """

    def __init__(
        self,
        files: Sequence[Path],
        labels: Tensor,
        indices: Sequence[int],
        transform: Callable,
        boxes: Tensor | None = None,
        mask_size: int | None = None,
    ) -> None:
        self.files = [Path(files[i]) for i in indices]
        self.labels = labels[list(indices)].long()
        self.transform = transform
        self.boxes = None if boxes is None else boxes[list(indices)].float()
        self.mask_size = mask_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx: int) -> tuple[Tensor, ...]:
        img = load_rgb(self.files[idx])
        x = self.transform(img)
        if self.boxes is None or self.mask_size is None:
            return x, self.labels[idx]
        s = self.mask_size
        bx, by, bw, bh = self.boxes[idx].unbind()
        sx, sy = s / img.width, s / img.height
        grid = torch.arange(s, dtype=torch.float32) + 0.5
        in_x = (grid >= bx * sx) & (grid <= (bx + bw) * sx)
        in_y = (grid >= by * sy) & (grid <= (by + bh) * sy)
        return x, self.labels[idx], (in_y[:, None] & in_x[None, :])[None]
