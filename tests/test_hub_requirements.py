"""Up-front artifact checks: every missing artifact in one error, a fetch script whose
``hf download`` lines the installed CLI really accepts, and a bounded wait for a hub that
does not answer."""

from __future__ import annotations

import shlex
import socket
import threading
import time
from pathlib import Path

import pytest

from harness.errors import ArtifactNotFoundError, HarnessError
from harness.weights.hub import Requirement, download_command, resolve_all

NEEDED = [
    Requirement("org/base", "models", ("*.json", "*.safetensors")),
    Requirement("org/expert_a", "models", ("*.json", "*.safetensors")),
    Requirement("org/expert_b", "models", ("*.json", "*.safetensors")),
    Requirement("org/data_a", "datasets"),
    Requirement("org/data_b", "datasets"),
]


def fill(root: Path, requirement: Requirement) -> None:
    target = root / requirement.kind / requirement.id
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")


def script_commands(message: str) -> list[str]:
    path = Path(message.split("are in ")[1].split(" ")[0])
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/bin/sh"
    return [line for line in lines if line.startswith("hf download")]


def test_every_missing_artifact_is_named_in_one_line(tmp_path):
    root = tmp_path / "mirror"
    for requirement in (NEEDED[0], NEEDED[2], NEEDED[4]):
        fill(root, requirement)
    empty_download = root / "models" / "org/expert_a" / ".cache" / "huggingface"
    empty_download.mkdir(parents=True)  # an interrupted download holds only metadata
    with pytest.raises(ArtifactNotFoundError) as error:
        resolve_all(NEEDED, mirror=root, needed_by="toy")
    message = str(error.value)
    assert "\n" not in message
    assert "lacks 2 of the 5 artifacts that toy needs" in message
    assert "models org/expert_a; datasets org/data_a" in message
    assert "org/base" not in message and "org/data_b" not in message
    commands = script_commands(message)
    assert commands == [
        "hf download org/expert_a --include '*.json' --include '*.safetensors' "
        '--local-dir "$MIRROR/models/org/expert_a"',
        'hf download org/data_a --repo-type dataset --local-dir "$MIRROR/datasets/org/data_a"',
    ]


def test_a_complete_mirror_resolves_in_order(tmp_path):
    root = tmp_path / "mirror"
    for requirement in NEEDED:
        fill(root, requirement)
    resolved = resolve_all(NEEDED, mirror=root, needed_by="toy")
    assert [(r.id, r.kind, r.source) for r in resolved] == [
        (req.id, req.kind, "mirror") for req in NEEDED
    ]
    assert resolved[3].path == root / "datasets" / "org/data_a"


def test_an_empty_mirror_is_summarised(tmp_path):
    with pytest.raises(ArtifactNotFoundError) as error:
        resolve_all(NEEDED, mirror=tmp_path / "nothing", needed_by="toy")
    message = str(error.value)
    assert "has none of the 5 artifacts (3 models, 2 datasets) that toy needs" in message
    assert len(script_commands(message)) == 5


def test_fetch_script_runs_the_hf_cli_with_the_right_arguments(tmp_path, monkeypatch):
    """Each line, run through the installed ``hf`` CLI (downloads replaced by a recorder),
    asks for the right repo, type, files and folder: ``huggingface-cli`` is gone and a
    second bare glob after ``--include`` would be taken for a file name."""
    import huggingface_hub.cli.download as download_cli
    from click.testing import CliRunner
    from huggingface_hub.cli.hf import app

    calls = []

    def record(**kwargs):
        calls.append(kwargs)
        return str(kwargs["local_dir"])

    monkeypatch.setattr(download_cli, "snapshot_download", record)
    runner = CliRunner()
    for requirement in (NEEDED[0], NEEDED[3]):
        words = shlex.split(download_command(requirement, str(tmp_path / "m")))
        assert words[:2] == ["hf", "download"]
        result = runner.invoke(app, words[1:])
        assert result.exit_code == 0, result.output
    assert [(c["repo_id"], c["repo_type"], c["allow_patterns"], c["local_dir"]) for c in calls] == [
        ("org/base", "model", ["*.json", "*.safetensors"], str(tmp_path / "m/models/org/base")),
        ("org/data_a", "dataset", None, str(tmp_path / "m/datasets/org/data_a")),
    ]


def test_offline_hub_says_so_and_asks_for_a_mirror(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(ArtifactNotFoundError) as error:
        resolve_all(NEEDED[:2], needed_by="toy")
    message = str(error.value)
    assert "cannot be reached (HF_HUB_OFFLINE is set)" in message
    assert "--mirror" in message and "\n" not in message
    assert len(script_commands(message)) == 2


@pytest.fixture
def silent_hub(monkeypatch):
    """A server that accepts connections and never answers (a silent proxy/firewall)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield
    server.close()
    for connection in held:
        connection.close()


def test_a_silent_hub_fails_within_the_timeout(silent_hub, monkeypatch, tmp_path):
    """huggingface_hub sets no read timeout on repo_info; unbounded, this would hang."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HARNESS_HUB_TIMEOUT", "0.5")
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)
    started = time.perf_counter()
    with pytest.raises(ArtifactNotFoundError, match="cannot be reached .*Timeout"):
        resolve_all(NEEDED, needed_by="toy")
    assert time.perf_counter() - started < 10


def test_bad_hub_timeout_is_a_one_line_error(silent_hub, monkeypatch):
    monkeypatch.setenv("HARNESS_HUB_TIMEOUT", "soon")
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)
    with pytest.raises(HarnessError, match="HARNESS_HUB_TIMEOUT='soon'"):
        resolve_all(NEEDED[:1])
