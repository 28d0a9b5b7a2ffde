"""Three-valued (Kleene) logic over features, once for one patient and once for numpy columns.

A criterion is TRUE, FALSE or UNDEFINED. ``all`` is FALSE if any part is FALSE, ``any`` is TRUE if any
part is TRUE, otherwise UNDEFINED wins over the remaining value; ``not`` swaps TRUE and FALSE. An
UNDEFINED branch makes its rule answer review (fail closed).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from nudge_engine.guardrails.features import Feature, Reading, compare, number

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


class Tri(IntEnum):
    FALSE = 0
    TRUE = 1
    UNDEFINED = 2


Reader = Callable[[Feature], Reading]


@dataclass(frozen=True)
class Columns:
    """Feature columns of many patients: value (NaN = missing) and undefined, by feature key."""

    values: Mapping[str, FloatArray]
    undefined: Mapping[str, BoolArray]


class Node(ABC):
    @abstractmethod
    def scalar(self, read: Reader) -> tuple[Tri, tuple[str, ...]]:
        """Truth for one patient and the evidence (or, when undefined, the reason)."""

    @abstractmethod
    def array(self, cols: Columns) -> tuple[BoolArray, BoolArray]:
        """(definitely true, undefined) masks over patients."""

    @abstractmethod
    def features(self) -> Iterator[Feature]: ...

    @abstractmethod
    def describe(self) -> str: ...


@dataclass(frozen=True)
class Flag(Node):
    """A yes/no feature (a condition, a medication in use, a clinician fact ...)."""

    feature: Feature

    def scalar(self, read: Reader) -> tuple[Tri, tuple[str, ...]]:
        r = read(self.feature)
        if r.undefined:
            return Tri.UNDEFINED, r.evidence
        return (Tri.TRUE, r.evidence) if r.value == 1.0 else (Tri.FALSE, ())

    def array(self, cols: Columns) -> tuple[BoolArray, BoolArray]:
        undefined = cols.undefined[self.feature.key]
        return (cols.values[self.feature.key] == 1.0) & ~undefined, undefined

    def features(self) -> Iterator[Feature]:
        yield self.feature

    def describe(self) -> str:
        return self.feature.describe()


@dataclass(frozen=True)
class Threshold(Node):
    """A numeric feature against a threshold; ``on_missing`` says what a missing value means."""

    feature: Feature
    op: str
    value: float
    on_missing: Tri

    def scalar(self, read: Reader) -> tuple[Tri, tuple[str, ...]]:
        r = read(self.feature)
        if r.undefined:
            return Tri.UNDEFINED, r.evidence
        if math.isnan(r.value):
            return self.on_missing, (f"missing: {self.feature.describe()}",) if self.on_missing else ()
        return (Tri.TRUE, r.evidence) if compare(r.value, self.op, self.value) else (Tri.FALSE, ())

    def array(self, cols: Columns) -> tuple[BoolArray, BoolArray]:
        values = cols.values[self.feature.key]
        undefined = cols.undefined[self.feature.key]
        missing = np.isnan(values)
        with np.errstate(invalid="ignore"):
            passed = _OPS[self.op](values, self.value)
        true = passed & ~missing & ~undefined
        if self.on_missing is Tri.TRUE:
            true |= missing & ~undefined
        elif self.on_missing is Tri.UNDEFINED:
            undefined = undefined | missing
        return true, undefined

    def features(self) -> Iterator[Feature]:
        yield self.feature

    def describe(self) -> str:
        return f"{self.feature.describe()} {self.op} {number(self.value)}"


_OPS: dict[str, Callable[[FloatArray, float], BoolArray]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
}


@dataclass(frozen=True)
class AllOf(Node):
    parts: tuple[Node, ...]

    def scalar(self, read: Reader) -> tuple[Tri, tuple[str, ...]]:
        evidence: list[str] = []
        undefined: list[str] = []
        for part in self.parts:
            tri, ev = part.scalar(read)
            if tri is Tri.FALSE:
                return Tri.FALSE, ()
            (undefined if tri is Tri.UNDEFINED else evidence).extend(ev)
        if undefined:
            return Tri.UNDEFINED, tuple(undefined)
        return Tri.TRUE, tuple(evidence)

    def array(self, cols: Columns) -> tuple[BoolArray, BoolArray]:
        true, undefined = self.parts[0].array(cols)
        false = ~true & ~undefined
        for part in self.parts[1:]:
            t, u = part.array(cols)
            true = true & t
            false = false | (~t & ~u)
        return true, ~true & ~false

    def features(self) -> Iterator[Feature]:
        for part in self.parts:
            yield from part.features()

    def describe(self) -> str:
        return "all(" + "; ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class AnyOf(Node):
    parts: tuple[Node, ...]

    def scalar(self, read: Reader) -> tuple[Tri, tuple[str, ...]]:
        evidence: list[str] = []
        undefined: list[str] = []
        for part in self.parts:
            tri, ev = part.scalar(read)
            if tri is Tri.TRUE:
                evidence.extend(ev)
            elif tri is Tri.UNDEFINED:
                undefined.extend(ev)
        if evidence:
            return Tri.TRUE, tuple(evidence)
        if undefined:
            return Tri.UNDEFINED, tuple(undefined)
        return Tri.FALSE, ()

    def array(self, cols: Columns) -> tuple[BoolArray, BoolArray]:
        true, undefined = self.parts[0].array(cols)
        false = ~true & ~undefined
        for part in self.parts[1:]:
            t, u = part.array(cols)
            true = true | t
            false = false & ~t & ~u
        return true, ~true & ~false

    def features(self) -> Iterator[Feature]:
        for part in self.parts:
            yield from part.features()

    def describe(self) -> str:
        return "any(" + "; ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class NoneOf(Node):
    part: Node

    def scalar(self, read: Reader) -> tuple[Tri, tuple[str, ...]]:
        tri, ev = self.part.scalar(read)
        if tri is Tri.UNDEFINED:
            return tri, ev
        if tri is Tri.TRUE:
            return Tri.FALSE, ()
        return Tri.TRUE, (f"none: {self.part.describe()}",)

    def array(self, cols: Columns) -> tuple[BoolArray, BoolArray]:
        true, undefined = self.part.array(cols)
        return ~true & ~undefined, undefined

    def features(self) -> Iterator[Feature]:
        yield from self.part.features()

    def describe(self) -> str:
        return f"not({self.part.describe()})"
