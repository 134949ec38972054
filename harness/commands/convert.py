"""``harness convert checkpoint``: torch files to safetensors."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("convert")
def convert_group() -> None:
    """Convert checkpoints to safetensors (the format the expert pool streams)."""


@convert_group.command("checkpoint")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Unpickle SOURCE if it is not a plain state dict (runs code from the file: "
    "only for files you trust, such as the task-vectors release).",
)
def convert_checkpoint_command(source: Path, target: Path, allow_pickle: bool) -> None:
    """Write TARGET/model.safetensors from a torch file SOURCE (.pt/.bin).

    \b
    Example (the original task-vectors release, into a mirror):
      harness convert checkpoint checkpoints/ViT-B-32/SUN397/finetuned.pt \\
          mirror/models/task-vectors/ViT-B-32_sun397 --allow-pickle
    """
    from harness.weights.convert import convert_checkpoint

    weights = convert_checkpoint(source, target, allow_pickle=allow_pickle)
    click.echo(f"written: {weights}")


@convert_group.command("routerbench")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Unpickle SOURCE (runs code from the file: only for the release you trust).",
)
def convert_routerbench_command(source: Path, allow_pickle: bool) -> None:
    """Write the parquet the routerbench suite reads beside RouterBench's pickle SOURCE.

    \b
    Example (in a mirror):
      harness convert routerbench \\
          mirror/datasets/withmartian/routerbench/routerbench_0shot.pkl --allow-pickle
    """
    from tasks.routing.routerbench import convert_pickle

    click.echo(f"written: {convert_pickle(source, allow_pickle=allow_pickle)}")
