"""The shipped override-reason code set (``nudge_engine/data/override_reasons.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clinical_review.model import Verdict
from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.domain.errors import InvalidInput, InvalidRuleSet

DEFAULT_PATH = PACKAGE_ROOT / "data" / "override_reasons.yaml"


class _Code(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^[a-z][a-z0-9-]{1,63}$")
    decision: Literal["approve", "reject", "system"]
    display: str
    definition: str
    retired: bool = False


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    system: str
    codes: list[_Code] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    decision: str
    display: str
    definition: str


class ReasonCodes:
    """Codes a clinician may choose, per verdict; ``check`` refuses anything else."""

    def __init__(self, reasons: list[Reason], *, version: str, system: str) -> None:
        self.version = version
        self.system = system
        self._all = {r.code: r for r in reasons}
        self._choosable = {v: tuple(r for r in reasons if r.decision == v.value) for v in Verdict}

    def for_verdict(self, verdict: Verdict | str) -> tuple[Reason, ...]:
        return self._choosable[Verdict(verdict)]

    def display(self, code: str | None) -> str | None:
        found = self._all.get(code or "")
        return found.display if found else code

    def check(self, verdict: Verdict, code: str) -> str:
        if code not in {r.code for r in self._choosable[verdict]}:
            raise InvalidInput(f"reason_code: '{code[:64]}' is not a {verdict.value} reason of the override-reason set")
        return code


def load_reasons(path: Path = DEFAULT_PATH) -> ReasonCodes:
    try:
        parsed = _File.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise InvalidRuleSet([f"{path.name}: {type(exc).__name__}: {str(exc).splitlines()[0]}"]) from exc
    codes = [c.code for c in parsed.codes]
    if len(codes) != len(set(codes)):
        raise InvalidRuleSet([f"{path.name}: a code appears twice"])
    live = [Reason(c.code, c.decision, c.display, c.definition) for c in parsed.codes if not c.retired]
    return ReasonCodes(live, version=parsed.version, system=parsed.system)
