"""Training data of LGST (docs/method.md 5.4): the autoencoder's colour jitter, the penalty images and the seeded
batch stream (the images reach the model through :func:`csad.imaging.model_input`, as at inference).

:func:`color_jitter` makes the augmented copy ``x'`` of a train batch,
:class:`PenaltyImages` draws the optional penalty images (``lgst.penalty_dir``, the paper: Tiny-ImageNet train) and
``_batch_indices`` yields the train batches from seeded permutations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as tvf

from csad.data.loco import read_image
from csad.errors import CsadError
from csad.io import list_dir

#: File suffixes (lower case) read from the penalty folder.
PENALTY_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class PenaltyDataError(CsadError, FileNotFoundError):
    """The penalty image folder (``lgst.penalty_dir``) is missing, empty or holds an unreadable image."""


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Return ``x`` ((B, 3, H, W) in [0, 1]) with, per image, one of brightness / contrast / saturation (chosen
    uniformly) scaled by a factor drawn from U(1 - strength, 1 + strength), as the released ``aug_image``.

    The released code jitters the PIL image before the resize to 256; here the resized image is jittered (the
    three operations are per pixel, or use the image mean, so the order changes the result only marginally).
    """
    ops = (tvf.adjust_brightness, tvf.adjust_contrast, tvf.adjust_saturation)
    out = []
    for img in x:
        choice = int(torch.randint(3, (1,), generator=generator))
        factor = 1.0 + strength * (2.0 * float(torch.rand(1, generator=generator)) - 1.0)
        out.append(ops[choice](img, factor))
    return torch.stack(out)


class PenaltyImages:
    """The penalty images of ``penalty_dir`` (searched recursively, sorted, hidden and system files skipped),
    drawn one at a time and decoded by :func:`csad.data.loco.read_image` (which refuses what it cannot decode).

    Each draw is transformed like EfficientAD's ImageNet images: the short side resized to ``2 * image_size``,
    grayscale (3 channels) with probability 0.3, centre crop ``image_size``.

    Raises:
        PenaltyDataError: the folder is missing or holds no image (the message names ``param``).
    """

    def __init__(self, folder: Path | str, image_size: int, param: str = "lgst.penalty_dir") -> None:
        self.folder = Path(folder)
        self.image_size = image_size
        self.param = param
        if not self.folder.is_dir():
            raise PenaltyDataError(
                f"{param}: penalty image folder {self.folder} not found; point it to a folder of natural images "
                "(the paper uses Tiny-ImageNet train) or set it to null to train without the penalty"
            )
        # hidden/system entries (.DS_Store, ._x.jpg, .ipynb_checkpoints/, __MACOSX/) are never penalty images
        self.paths = list_dir(self.folder, kind="file", suffixes=PENALTY_SUFFIXES, recursive=True)
        if not self.paths:
            raise PenaltyDataError(
                f"{param}: penalty image folder {self.folder} holds no image ({', '.join(PENALTY_SUFFIXES)}); "
                "fill it or set it to null to train without the penalty"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """Return one random transformed penalty image, (1, 3, S, S) float32 in [0, 1]."""
        path = self.paths[int(torch.randint(len(self.paths), (1,), generator=generator))]
        try:
            img = read_image(path)
        except CsadError as err:
            raise PenaltyDataError(f"{self.param}: {err}") from err
        x = torch.from_numpy(img).permute(2, 0, 1).float().div_(255.0)
        x = tvf.resize(x, [2 * self.image_size], antialias=True).clamp_(0.0, 1.0)
        if float(torch.rand(1, generator=generator)) < 0.3:
            x = tvf.rgb_to_grayscale(x, num_output_channels=3)
        return tvf.center_crop(x, [self.image_size, self.image_size])[None]


def _batch_indices(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield index batches forever from a stream of seeded random permutations of ``range(n)``."""
    buf: list[int] = []
    while True:
        while len(buf) < batch_size:
            buf += torch.randperm(n, generator=generator).tolist()
        yield torch.tensor(buf[:batch_size])
        buf = buf[batch_size:]
