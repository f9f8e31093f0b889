"""The one checkpoint convention (csad.io.save_checkpoint / load_checkpoint): byte-reproducible, tensors-only, and
every bad file refused with one line naming it and the stage that rebuilds it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from csad.errors import CheckpointError, CsadError
from csad.io import load_checkpoint, numpy_to_tensors, save_checkpoint
from csad.lgst.checkpoint import load_lgst

PAYLOAD = {"format": "t-1", "w": torch.arange(6.0).reshape(2, 3), "meta": {"n": 3, "names": ["a", "b"], "x": None}}


class Custom:
    pass


def test_round_trip_and_same_bytes_whatever_the_name(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "a.pt", PAYLOAD)
    save_checkpoint(tmp_path / "sub" / "b.pt", PAYLOAD)  # the missing folder is created
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "b.pt").read_bytes()
    back = load_checkpoint(tmp_path / "a.pt", "train_seg", "segmenter", fmt="t-1")
    assert torch.equal(back["w"], PAYLOAD["w"]) and back["meta"] == PAYLOAD["meta"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([1, 2], "expected a dict"),
        ({"a": np.zeros(2)}, r"\['a'\] is a ndarray.*numpy_to_tensors"),
        ({"a": {"b": [1, Custom()]}}, r"\['a'\]\['b'\]\[1\] is a Custom"),
        ({"a": {(1, 2): 3}}, "key .1, 2. is a tuple"),
    ],
)
def test_save_refuses_what_cannot_be_loaded_back(tmp_path: Path, obj: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        save_checkpoint(tmp_path / "x.pt", obj)  # type: ignore[arg-type]
    assert not (tmp_path / "x.pt").exists()
    save_checkpoint(tmp_path / "ok.pt", {"a": numpy_to_tensors({"z": np.zeros(2)})})


def test_load_names_the_file_and_the_stage_for_every_bad_file(tmp_path: Path) -> None:
    def refused(path: Path, match: str, fmt: str | None = None) -> None:
        with pytest.raises(CheckpointError, match=match) as err:
            load_checkpoint(path, "train_seg", "segmenter", fmt)
        assert str(path) in str(err.value) and "\x1b" not in str(err.value)

    refused(tmp_path / "missing.pt", r"segmenter checkpoint .* not found: run the train_seg stage first")
    refused(tmp_path, "is a folder")
    (tmp_path / "empty.pt").write_bytes(b"")
    refused(tmp_path / "empty.pt", r"is empty .*dvc repro train_seg")
    (tmp_path / "junk.pt").write_bytes(os.urandom(64))
    refused(tmp_path / "junk.pt", r"cannot read segmenter checkpoint .*dvc repro train_seg")
    torch.save({"c": Custom()}, tmp_path / "pickled.pt")
    refused(tmp_path / "pickled.pt", r"WeightsUnpickler error")  # pickled code is never run
    save_checkpoint(tmp_path / "good.pt", PAYLOAD)
    half = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(half[: len(half) // 2])
    refused(tmp_path / "cut.pt", "cannot read")
    torch.save([1, 2], tmp_path / "list.pt")
    refused(tmp_path / "list.pt", "holds a list, not a checkpoint dict")
    refused(tmp_path / "good.pt", r"format tag 't-1', expected 'other-2'", fmt="other-2")


def test_load_lgst_refuses_damaged_payloads_and_bad_devices(tmp_path: Path) -> None:
    from csad.lgst.checkpoint import CHECKPOINT_FORMAT

    save_checkpoint(tmp_path / "no_config.pt", {"format": CHECKPOINT_FORMAT})
    with pytest.raises(CheckpointError, match=r"lacks the entry 'config'"):
        load_lgst(tmp_path / "no_config.pt")
    save_checkpoint(tmp_path / "bad_json.pt", {"format": CHECKPOINT_FORMAT, "config": "{not json"})
    with pytest.raises(CheckpointError, match="does not fit its config"):
        load_lgst(tmp_path / "bad_json.pt")
    with pytest.raises(CsadError, match="unknown device 'tpu'"):
        load_lgst(tmp_path / "no_config.pt", device="tpu")
