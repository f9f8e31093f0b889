"""DVC stage ``train_lgst@<category>``: the Local-Global Student-Teacher branch (docs/method.md section 5).

    python stages/train_lgst.py --category pushpins

Frozen teacher (shared backbone layer2 + layer3, 3x3 average pooling, frozen seeded 1x1 projection), local student
(33x33 receptive field, two heads) and autoencoder, trained on train/good with the hard loss, optional penalty
images and the AE / student-AE losses; map quantiles (0.9 / 0.995) fitted on validation/good only.
Params ``lgst`` (per category via ``lgst.overrides``) and ``runtime``. Writes ``models/<category>/lgst.pt`` and the
training curves ``metrics/<category>/train_lgst/`` (dvclive).
"""

from __future__ import annotations

import time

from dvclive import Live

from csad.artifacts import category_metrics_dir, stage_output
from csad.data.loco import read_image
from csad.lgst.checkpoint import save_lgst
from csad.lgst.config import config_from_params
from csad.lgst.maps import fit_map_normalizer
from csad.lgst.train import train_lgst
from csad.stage import load_stage, run_stage


def main(argv: list[str] | None = None) -> None:
    """Train LGST for one category."""
    run = load_stage(argv, __doc__, "train_lgst")
    args, category, cfg = run.args, run.category, dict(run.config)
    cfg["device"] = run.device()
    config, backbone = config_from_params(cfg)
    train = [read_image(r.path) for r in category.split("train")]
    val = [read_image(r.path) for r in category.split("validation")]
    every = max(1, config.iterations // 200)
    with Live(dir=str(category_metrics_dir(args.category) / "train_lgst"), save_dvc_exp=False, dvcyaml=None) as live:

        def log_step(step: int, losses: dict[str, float]) -> None:
            if step % every == 0 or step == config.iterations:
                live.step = step
                for name, value in losses.items():
                    live.log_metric(f"train/{name}", float(value), plot=True)

        start = time.perf_counter()
        model = train_lgst(train, config, backbone, callback=log_step)
        normalizer = fit_map_normalizer(model, val, config)
        live.summary["train_seconds"] = round(time.perf_counter() - start, 2)
    save_lgst(stage_output("train_lgst", args.category), model, normalizer, config)


if __name__ == "__main__":
    run_stage(main)
