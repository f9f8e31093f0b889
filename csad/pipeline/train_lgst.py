"""The ``train_lgst`` stage: the Local-Global Student-Teacher branch, trained on train/good.

Reads the train and validation/good images; writes ``models/<category>/lgst.pt``
(:func:`csad.lgst.checkpoint.save_lgst`: the student, autoencoder, projection and the map quantiles fitted on
validation/good only) and the training curves ``metrics/<category>/train_lgst/`` (dvclive). The algorithm is
:mod:`csad.lgst`.
"""

from __future__ import annotations

import time
from typing import Any

from dvclive import Live

from csad.artifacts import category_metrics_dir, stage_output
from csad.data.loco import read_image
from csad.lgst.checkpoint import save_lgst
from csad.lgst.config import config_from_params
from csad.lgst.maps import fit_map_normalizer
from csad.lgst.train import train_lgst
from csad.pipeline.stage import StageInputs


def run(inputs: StageInputs) -> dict[str, Any]:
    """Run the ``train_lgst`` stage for one category; return ``{"train_seconds": ...}``."""
    name, category = inputs.category.name, inputs.category
    config, backbone = config_from_params({**inputs.config, "device": inputs.device()})
    train = [read_image(r.path) for r in category.split("train")]
    val = [read_image(r.path) for r in category.split("validation")]
    every = max(1, config.iterations // 200)
    with Live(dir=str(category_metrics_dir(name) / "train_lgst"), save_dvc_exp=False, dvcyaml=None) as live:

        def log_step(step: int, losses: dict[str, float]) -> None:
            if step % every == 0 or step == config.iterations:
                live.step = step
                for key, value in losses.items():
                    live.log_metric(f"train/{key}", float(value), plot=True)

        start = time.perf_counter()
        model = train_lgst(train, config, backbone, callback=log_step)
        normalizer = fit_map_normalizer(model, val, config)
        seconds = round(time.perf_counter() - start, 2)
        live.summary["train_seconds"] = seconds
    save_lgst(stage_output("train_lgst", name), model, normalizer, config)
    return {"train_seconds": seconds}
