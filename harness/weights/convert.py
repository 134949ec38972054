"""Convert a torch checkpoint file to safetensors, unpickling only when asked to.

``torch.load(weights_only=True)`` reads plain state dicts safely. The original
task-vectors release pickles whole ``ImageEncoder`` objects; loading those runs code from
the file, so it happens only with ``allow_pickle=True`` (``--allow-pickle``). Classes the
file names but this environment lacks (the release's ``src.modeling``) are rebuilt as
plain ``nn.Module`` shells, which is enough to read their tensors.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from harness.cache import atomic_path, file_sha256, write_json_atomic
from harness.errors import CheckpointError

_SHELLS: dict[tuple[str, str], type] = {}


class _PermissiveUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            key = (module, name)
            if key not in _SHELLS:
                _SHELLS[key] = type(name, (torch.nn.Module,), {"__module__": module})
            return _SHELLS[key]


_permissive_pickle = types.ModuleType("harness_permissive_pickle")
_permissive_pickle.__dict__.update(
    {name: getattr(pickle, name) for name in dir(pickle) if not name.startswith("__")}
)
_permissive_pickle.Unpickler = _PermissiveUnpickler  # type: ignore[attr-defined]


def load_tensors(source: Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a torch file: a state dict, {"state_dict": ...}, or a pickled module."""
    source = Path(source)
    if not source.is_file():
        raise CheckpointError(f"{source} does not exist; give the path of a .pt/.bin file")
    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:
        if not allow_pickle:
            reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
            raise CheckpointError(
                f"{source} holds pickled Python objects, not just tensors ({reason}); "
                "unpickling runs code from the file: if you trust its source, rerun with "
                "--allow-pickle"
            ) from None
        try:
            loaded = torch.load(
                source, map_location="cpu", weights_only=False, pickle_module=_permissive_pickle
            )
        except Exception as error2:
            raise CheckpointError(f"{source} cannot be read as a torch file ({error2})") from None
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise CheckpointError(
            f"{source} holds a {type(loaded).__name__}, not a state dict or a module"
        )
    tensors = {
        str(name): value.detach().contiguous().clone()
        for name, value in loaded.items()
        if isinstance(value, torch.Tensor)
    }
    if not tensors:
        raise CheckpointError(f"{source} holds no tensors")
    return tensors


def convert_checkpoint(source: Path, target: Path, *, allow_pickle: bool = False) -> Path:
    """Write ``target/model.safetensors`` (a mirror snapshot directory) from ``source``."""
    tensors = load_tensors(source, allow_pickle=allow_pickle)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    weights = target / "model.safetensors"
    with atomic_path(weights) as temporary:
        save_file(tensors, str(temporary), metadata={"format": "pt"})
    write_json_atomic(
        target / "conversion.json",
        {
            "source": Path(source).name,
            "source_sha256": file_sha256(Path(source)),
            "unpickled": allow_pickle,
            "tensors": len(tensors),
        },
    )
    return weights
