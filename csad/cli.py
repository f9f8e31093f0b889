"""The ``csad`` command line.

    csad predict --model models/pushpins/detector.pt IMAGE_OR_FOLDER... --out DIR [--json] [--backend onnx]
    csad export --model models/pushpins/detector.pt --out detector.onnx
    csad evaluate --dataset-root DATA --maps MAPS --category pushpins [--output metrics.json]

``predict`` scores images of any size with a trained detector and writes ``DIR/predictions.csv`` (path, score,
verdict, threshold, branch scores, error), optionally ``DIR/predictions.json``, and one overlay picture per image
in ``DIR/overlays/`` (image, anomaly heat map, segmentation). Folders are searched recursively for images (sorted;
hidden and system files skipped). An image that cannot be read is a row with its error and the others are still
scored; the exit status is then 2 (0 when every image was scored, 1 on a fatal error such as a bad model).
The verdict is "anomalous" when the score is above the detector's threshold (see the README, "Verdicts").

``export`` writes the detector as an ONNX model (dynamic batch axis) that ``predict --backend onnx`` (or
``openvino``) runs.

``evaluate`` scores a folder of ``.tiff`` / ``.tif`` anomaly maps (suffix in any case) in the official MVTec LOCO
AD layout (``MAPS/<category>/test/<type>/<stem>.tiff``) against a dataset root, with the official AU-sPRO
definition and image AUROC (image score = max of the map), and writes the official-style ``metrics.json``.
Any subset of test image types works: a metric that cannot be computed is ``null`` with ``"<key>_reason"``
beside it. Hidden and system entries of MAPS (``.ipynb_checkpoints``, ``.DS_Store``, ``__MACOSX``) are ignored.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from csad.errors import CsadError
from csad.io import json_text, list_dir, write_json


def _evaluate(args: argparse.Namespace) -> int:
    """Run ``csad evaluate``; return the exit status.

    Raises:
        CsadError: the maps root is missing or holds no category folder, or the dataset or a map is bad
            (one line naming the file).
    """
    from csad.eval.evaluate import evaluate_maps

    maps = Path(args.maps)
    if not maps.is_dir():
        raise CsadError(f"anomaly maps root {maps} does not exist: pass --maps <folder holding <category>/test/...>")
    categories = args.category or [p.name for p in list_dir(maps, kind="dir")]
    if not categories:
        raise CsadError(f"anomaly maps root {maps} holds no category folder: expected {maps}/<category>/test/<type>/")
    results = {}
    for category in categories:
        results[category] = evaluate_maps(args.dataset_root, category, args.maps, progress=not args.quiet)
    if args.output:
        write_json(args.output, results if len(results) > 1 else results[categories[0]])
    print(json_text(results))
    return 0


def _positive_int(text: str) -> int:
    """Return ``text`` as an int >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _output_folder(out: Path) -> Path:
    """Return ``out`` created as a folder.

    Raises:
        CsadError: ``out`` is a file or cannot be created (names ``--out``).
    """
    if out.exists() and not out.is_dir():
        raise CsadError(f"--out {out} is a file: pass a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CsadError(
            f"--out {out}: cannot create the folder ({err.strerror or err}); pass a writable folder"
        ) from None
    return out


def _collect_inputs(items: list[str], out: Path | None = None) -> list[Path]:
    """Return the image paths of the command line: files as given, folders searched recursively (sorted), without
    the files under ``out`` (a results folder inside an input folder is not rescored on the next run)."""
    from csad.detector.predict import IMAGE_SUFFIXES

    skip = out.resolve() if out is not None else None
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = list_dir(path, kind="file", suffixes=IMAGE_SUFFIXES, recursive=True)
            if skip is not None:
                found = [p for p in found if not p.resolve().is_relative_to(skip)]
            if not found:
                print(f"warning: {path} holds no image ({', '.join(IMAGE_SUFFIXES)})", file=sys.stderr)
            paths.extend(found)
        else:
            paths.append(path)  # a missing or unreadable file becomes a row with its error
    return paths


def _overlay_name(path: Path, used: set[str]) -> str:
    """Return a unique overlay file name for ``path`` (its parts joined by ``__``)."""
    parts = [p for p in path.with_suffix("").parts if p not in ("/", "..", ".")][-3:]
    base = "__".join(parts) or "image"
    name, n = f"{base}.png", 1
    while name in used:
        n += 1
        name = f"{base}-{n}.png"
    used.add(name)
    return name


def _predict(args: argparse.Namespace) -> int:
    """Run ``csad predict``; return 0 (all scored), 2 (some images failed) or raise CsadError (fatal)."""
    import math

    import pandas as pd

    from csad.detector.overlay import overlay_picture
    from csad.detector.predict import iter_predictions, open_runner
    from csad.io import atomic_path, write_png

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CsadError(f"--out {out} is a file: pass a folder for the results")
    paths = _collect_inputs(args.inputs, out)
    if not paths:
        raise CsadError("no image to score: pass image files or folders holding images")
    runner = open_runner(args.model, args.backend, args.device)
    if not math.isfinite(runner.threshold):
        print(
            f"warning: {args.model} has no finite threshold ({runner.threshold}): every verdict is 'good'",
            file=sys.stderr,
        )
    _output_folder(out)
    rows, used, failed = [], set(), 0
    for pred in iter_predictions(
        runner, paths, args.batch_size, progress=not args.quiet, total=len(paths), keep_image=not args.no_overlays
    ):
        row = pred.row()
        if pred.error is not None:
            failed += 1
            print(
                f"error: {pred.error if pred.source in pred.error else f'{pred.source}: {pred.error}'}", file=sys.stderr
            )
        elif not args.no_overlays:
            name = _overlay_name(Path(pred.source), used)
            write_png(out / "overlays" / name, overlay_picture(pred))
            row["overlay"] = f"overlays/{name}"
        rows.append(row)
    table = pd.DataFrame(rows)
    with atomic_path(out / "predictions.csv") as tmp:
        table.to_csv(tmp, index=False)
    if args.json:
        threshold = runner.threshold if math.isfinite(runner.threshold) else None
        json_rows = [
            {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()} for r in rows
        ]
        write_json(out / "predictions.json", {"threshold": threshold, "predictions": json_rows})
    scored = len(rows) - failed
    anomalous = int((table["verdict"] == "anomalous").sum()) if scored else 0
    print(
        f"{scored} of {len(rows)} images scored: {anomalous} anomalous, {scored - anomalous} good "
        f"(threshold {runner.threshold:.4g}); wrote {out / 'predictions.csv'}"
    )
    return 2 if failed else 0


def _export(args: argparse.Namespace) -> int:
    """Run ``csad export``; return the exit status."""
    from csad.detector.export import export_onnx
    from csad.detector.model import CsadDetector

    if Path(args.model).suffix.lower() == ".onnx":
        raise CsadError(f"--model {args.model} is already an ONNX export: pass the detector.pt it came from")
    out = Path(args.out)
    if out.is_dir():
        raise CsadError(f"--out {out} is a folder: pass the .onnx file to write, e.g. {out / 'detector.onnx'}")
    if out.suffix.lower() != ".onnx":
        raise CsadError(f"--out {out}: name the file *.onnx (csad predict picks the backend by that suffix)")
    path = export_onnx(CsadDetector.load(args.model), out)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="csad", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="score images with a trained detector: CSV, JSON and overlay pictures")
    pr.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files or folders of images")
    pr.add_argument("--model", required=True, help="models/<category>/detector.pt, or an exported .onnx")
    pr.add_argument("--out", required=True, help="output folder (predictions.csv, overlays/)")
    pr.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnx", "openvino"],
        help="auto: torch for .pt, onnx for .onnx",
    )
    pr.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1); torch backend only")
    pr.add_argument("--batch-size", type=_positive_int, default=8, help="images per forward pass (default 8)")
    pr.add_argument("--json", action="store_true", help="also write predictions.json")
    pr.add_argument("--no-overlays", action="store_true", help="do not write overlay pictures")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_predict)
    ex = sub.add_parser("export", help="export a detector to ONNX")
    ex.add_argument("--model", required=True, help="models/<category>/detector.pt")
    ex.add_argument("--out", required=True, help="the .onnx file to write")
    ex.set_defaults(func=_export)
    ev = sub.add_parser("evaluate", help="score a folder of anomaly maps against an MVTec LOCO style dataset")
    ev.add_argument("--dataset-root", required=True, help="folder holding the category folders")
    ev.add_argument(
        "--maps", required=True, help="anomaly maps root: <maps>/<category>/test/<type>/<stem>.tiff (or .tif)"
    )
    ev.add_argument("--category", action="append", help="category to score (repeatable; default: all under --maps)")
    ev.add_argument("--output", help="write the metrics JSON here")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_evaluate)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (CsadError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
