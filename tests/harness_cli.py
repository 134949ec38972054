"""``harness ARGS`` in-process, as the console script runs it."""

from __future__ import annotations

import sys

from harness.cli import main


def invoke(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``harness ARGS``: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["harness", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
