"""The rule-set digest: sha256 over canonical JSON of the parsed rule set (sorted keys, no spaces).

It covers the manifest (with the effective parameters), every value set, the product map and every
rule, and is stamped on every decision. Example cases are not part of it: they cannot change a decision.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest_of(document: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()
