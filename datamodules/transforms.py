"""Train / evaluation transforms: the paper's augmentation list (docs/protocol.md §4), a light
one, none."""

from __future__ import annotations

from collections.abc import Callable

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from errors import ConfigError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
AUGMENTS = ("paper", "light", "none")


def _augmentations(augment: str, size: int, tensor_input: bool) -> list[Callable]:
    if augment not in AUGMENTS:
        raise ConfigError(f"augment={augment!r} is not one of {AUGMENTS}")
    if augment == "paper":
        # Order and values exactly as the official train.py (docs/protocol.md §4); torchvision's
        # tensor path has no bicubic perspective warp, so tensor inputs (the synthetic set) use
        # bilinear.
        warp = InterpolationMode.BILINEAR if tensor_input else InterpolationMode.BICUBIC
        return [
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.RandomRotation(30),
            T.ColorJitter(0.2, 0.2, 0.2, 0.1),
            T.RandomAffine(degrees=0, translate=(0.1, 0.1)),
            T.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3),
                                interpolation=InterpolationMode.BILINEAR),
            T.RandomPerspective(distortion_scale=0.2, p=0.5,
                                interpolation=warp, fill=0),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.2),
        ]
    if augment == "light":
        return [T.RandomHorizontalFlip(), T.RandomResizedCrop(size, scale=(0.85, 1.0))]
    return [T.Resize((size, size))]


def train_transform(
    augment: str,
    size: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    tensor_input: bool = False,
) -> Callable:
    """PIL image (or float tensor ``[3, H, W]`` in [0, 1] if ``tensor_input``) -> ``[3, s, s]``."""
    to_tensor = [] if tensor_input else [T.ToTensor()]
    augs = _augmentations(augment, size, tensor_input)
    return T.Compose([*augs, *to_tensor, T.Normalize(mean, std)])


def eval_transform(
    size: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    tensor_input: bool = False,
) -> Callable:
    """``Resize((s, s))``, ``ToTensor``, ``Normalize`` (docs/protocol.md §4, test): PIL ->
    ``[3, s, s]``."""
    to_tensor = [] if tensor_input else [T.ToTensor()]
    return T.Compose([T.Resize((size, size)), *to_tensor, T.Normalize(mean, std)])
