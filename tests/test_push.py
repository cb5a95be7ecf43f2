"""`physworld push`: checks what it sends, and with no hub reachable stops in one line, fast. The test
points HF_ENDPOINT at a closed local port; it never contacts the real hub."""

from __future__ import annotations

import socket
import time

import pytest

from physworld.cli import main

pytest.importorskip("huggingface_hub")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: connections are refused


def _run_dir(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model:\n  hidden: 16\n")
    return run


def test_no_hub_reachable_is_one_line_and_fast(tmp_path, monkeypatch, capsys):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    run = _run_dir(tmp_path)
    started = time.monotonic()
    assert main(["push", "--repo-id", "someone/tiny", "--path", str(run)]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"no Hugging Face Hub reachable at {endpoint}" in err
    assert (run / "README.md").is_file()  # a model goes with its card, written before the upload


def test_what_is_sent_is_checked_before_any_network(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    run = _run_dir(tmp_path)
    cases = [
        (["--repo-id", "no-slash", "--path", str(run)], "expected USER/NAME"),
        (["--repo-id", "a/b", "--path", str(tmp_path / "missing")], "not a directory"),
        (["--repo-id", "a/b", "--path", str(run), "--type", "dataset"], "no manifest.json"),
        (["--repo-id", "a/b", "--path", str(tmp_path)], "no config.yaml"),
    ]
    for args, message in cases:
        assert main(["push", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
