"""Models as bytes: arrays in an ``.npz`` (no pickle) plus a JSON header. Nothing executable is stored."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from nudge_engine.domain.errors import InvalidInput


def dump(kind: str, header: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    buf = io.BytesIO()
    meta = np.frombuffer(json.dumps({"kind": kind, **header}, sort_keys=True).encode(), dtype=np.uint8)
    np.savez_compressed(buf, __header__=meta, **dict(arrays))  # type: ignore[arg-type]
    return buf.getvalue()


def load(kind: str, blob: bytes) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"model: field '-': not a model file ({exc})") from None
    header = json.loads(arrays.pop("__header__").tobytes().decode())
    if header.get("kind") != kind:
        raise InvalidInput(f"model: field 'kind': expected {kind!r}, got {header.get('kind')!r}")
    return header, arrays
