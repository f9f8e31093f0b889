"""Sharing the costly pseudo-labels through a DVC remote: machine A computes and pushes, machine B clones, pulls
and reruns none of the pseudo-label stages. A local directory remote always; an S3 remote on a local moto server
where the dvc-s3 plugin and moto are installed."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import FULL_CATEGORY as CATEGORY
from tests.helpers import BuiltProject, dvc, ran_stages, run

pytestmark = pytest.mark.integration
PSEUDO_STAGES = {f"{s}@{CATEGORY}" for s in ("tag", "ground", "propose", "refine", "features", "cluster", "filter")}


def _share_and_reuse(built_project: BuiltProject, tmp_path: Path, remote_url: str, endpoint: str | None = None) -> None:
    machine_a = built_project.copy(tmp_path / "a")  # has run the whole pipeline (tests/conftest.py)
    dvc("remote", "add", "-d", "shared", remote_url, cwd=machine_a)
    if endpoint:
        dvc("remote", "modify", "shared", "endpointurl", endpoint, cwd=machine_a)
    run(["git", "add", "-A"], cwd=machine_a)
    run(["git", "commit", "-qm", "pseudo-labels"], cwd=machine_a)
    dvc("push", cwd=machine_a)

    machine_b = tmp_path / "b"
    run(["git", "clone", "-q", str(machine_a), str(machine_b)], cwd=tmp_path)
    dvc("pull", "--allow-missing", cwd=machine_b)
    assert (machine_b / f"data/pseudo_labels/{CATEGORY}/labeled.parquet").is_file()
    assert not (machine_b / f"data/datasets/synthloco/{CATEGORY}").exists(), "push: false output was pushed"
    ran = ran_stages(dvc("repro", f"filter@{CATEGORY}", cwd=machine_b).stdout)
    assert ran == [f"synth@{CATEGORY}"], ran  # re-rendered (cheap, push: false); identical, so nothing follows
    assert not PSEUDO_STAGES & set(ran)
    assert "up to date" in dvc("status", f"filter@{CATEGORY}", cwd=machine_b).stdout


def test_local_directory_remote(built_project: BuiltProject, tmp_path: Path) -> None:
    _share_and_reuse(built_project, tmp_path, str(tmp_path / "remote"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(
    importlib.util.find_spec("dvc_s3") is None or importlib.util.find_spec("moto") is None,
    reason="needs the dvc-s3 plugin and moto[server] (pip install -e '.[dev]')",
)
def test_s3_remote_on_a_local_moto_server(
    built_project: BuiltProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(key, value)
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="csad-cache")
        _share_and_reuse(built_project, tmp_path, "s3://csad-cache/pseudo-labels", endpoint=url)
    finally:
        server.terminate()
        server.wait(timeout=10)
