"""LGST checkpoints (docs/method.md 5.4 and 5.5): the trained model, its map normaliser and its config in one file.

:func:`save_lgst` writes one dict of tensors and JSON strings (format :data:`CHECKPOINT_FORMAT`, no pickled
modules); :func:`load_lgst` rebuilds the model from it and checks the backbone against the stored fingerprint.
Nothing here imports the training code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import torch

from csad.errors import CheckpointError, CsadError
from csad.io import load_checkpoint, save_checkpoint
from csad.lgst.config import LgstConfig
from csad.lgst.maps import MapNormalizer
from csad.models.lgst import LgstModel
from csad.models.spec import BackboneSpec
from csad.runtime import check_device, resolve_device

#: Checkpoint format tag.
CHECKPOINT_FORMAT = "csad-lgst-1"


def save_lgst(path: Path | str, model: LgstModel, normalizer: MapNormalizer, config: LgstConfig) -> None:
    """Write the LGST checkpoint ``path`` atomically: one dict of tensors and JSON strings (no pickled modules).

    Holds the config, the backbone spec, every non-backbone tensor of the model (teacher projection weight AND
    bias, teacher mean/std, student, AE), the map normaliser and a fingerprint of the backbone weights.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(config.to_dict()),
        "backbone": json.dumps(asdict(model.spec)),
        "state": {k: v.detach().cpu().clone() for k, v in model.lgst_state().items()},
        "normalizer": normalizer.to_tensor(),
        "backbone_fingerprint": model.backbone_fingerprint(),
    }
    save_checkpoint(path, payload)


def load_lgst(path: Path | str, device: str = "cpu") -> tuple[LgstModel, MapNormalizer, LgstConfig]:
    """Return (model in eval mode on ``device``, normaliser, config) from the checkpoint written by
    :func:`save_lgst`; the backbone is rebuilt from the stored spec and checked against the fingerprint.

    Raises:
        CheckpointError: the file is missing, unreadable, of another format, lacks an entry or does not fit its
            config, or the rebuilt backbone differs from the one the model was trained with.
        CsadError: ``device`` is unknown or not available here.
    """
    check_device(device)
    payload = load_checkpoint(path, "train_lgst", "LGST", CHECKPOINT_FORMAT)
    try:
        known = {f.name for f in fields(LgstConfig)}
        config = LgstConfig(**{k: v for k, v in json.loads(payload["config"]).items() if k in known})
        spec = BackboneSpec(**json.loads(payload["backbone"]))
        model = config.build_model(spec)
        model.load_lgst_state(payload["state"])
        normalizer = MapNormalizer.from_tensor(payload["normalizer"])
        stored = torch.as_tensor(payload["backbone_fingerprint"])
    except CsadError:  # the backbone's weights cannot be found or its name is unknown: that message says why
        raise
    except KeyError as err:
        raise CheckpointError(
            f"LGST checkpoint {path} lacks the entry {err}; retrain LGST (dvc repro train_lgst)"
        ) from None
    except (RuntimeError, TypeError, ValueError, AttributeError) as err:  # json.JSONDecodeError is a ValueError
        raise CheckpointError(f"LGST checkpoint {path} does not fit its config: {err}") from err
    current = model.backbone_fingerprint()
    if stored.shape != current.shape or not torch.allclose(stored, current, rtol=1e-6, atol=1e-6):
        raise CheckpointError(
            f"LGST checkpoint {path}: the backbone {spec.name} ({spec.param} = {spec.weights}) is not the one it "
            "was trained with; restore those weights or retrain LGST"
        )
    model.to(resolve_device(device)).eval()
    return model, normalizer, config
