"""The image operations the dashboard offers: their names, labels and parameters with the
API's ranges (tests/frontend/test_pipeline_schema.py compares them with its OpenAPI schema).

The one source of the words shown for an operation — in the step picker, the step list, the
Jobs page and an image's details — and of the short text a step takes in the page's address
(`contrast factor 1.3`), so a reload keeps the pipeline being built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_OPERATIONS = 10


class InvalidStep(ValueError):
    """A step the API would refuse; the message (a sentence without its full stop) says why."""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an operation. An `optional` number may be left out: its input then
    also takes 0, which means "not given"."""

    name: str
    label: str
    default: float | int | str
    minimum: float | int | None = None
    maximum: float | int | None = None
    step: float | int | None = None
    options: tuple[str, ...] = ()
    optional: bool = False

    def checked(self, value: Any) -> float | int | str:
        """`value` in the API's type when it is allowed; else InvalidStep."""
        if self.options:
            if value not in self.options:
                raise InvalidStep(f"{self.name.capitalize()} is one of {', '.join(self.options)}")
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidStep(f"{self.name.capitalize()} must be a number") from None
        if isinstance(self.default, int):
            if not number.is_integer():
                raise InvalidStep(f"{self.name.capitalize()} must be a whole number")
            number = int(number)
        if not math.isfinite(number) or not self.minimum <= number <= self.maximum:
            raise InvalidStep(
                f"{self.name.capitalize()} goes from {self.minimum:g} to {self.maximum:g}"
            )
        return number


@dataclass(frozen=True, slots=True)
class Operation:
    label: str
    params: tuple[Param, ...] = ()


def _factor(label: str) -> Param:
    return Param("factor", label, 1.3, 0.0, 5.0, 0.1)


OPERATIONS: dict[str, Operation] = {
    "grayscale": Operation("Grayscale"),
    "blur": Operation("Blur", (Param("radius", "Radius (px)", 2.0, 0.1, 50.0, 0.1),)),
    "sharpen": Operation("Sharpen"),
    "edges": Operation("Find edges"),
    "resize": Operation(
        "Resize",
        (
            Param("width", "Width (0 keeps the aspect ratio)", 0, 1, 8000, 1, optional=True),
            Param("height", "Height (0 keeps the aspect ratio)", 0, 1, 8000, 1, optional=True),
        ),
    ),
    "rotate": Operation(
        "Rotate", (Param("angle", "Angle (degrees, counter-clockwise)", 90.0, -360.0, 360.0, 1.0),)
    ),
    "flip": Operation(
        "Flip", (Param("direction", "Direction", "horizontal", options=("horizontal", "vertical")),)
    ),
    "brightness": Operation("Brightness", (_factor("Factor (1 = unchanged)"),)),
    "contrast": Operation("Contrast", (_factor("Factor (1 = unchanged)"),)),
    "sepia": Operation("Sepia"),
    "invert": Operation("Invert colours"),
    "threshold": Operation("Black & white threshold", (Param("level", "Level", 128, 0, 255, 1),)),
}


def build_operation(op_name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The API's form of a step from its parameter values (optional ones at 0 or missing are
    left out); InvalidStep when the API would refuse it."""
    operation = OPERATIONS.get(op_name)
    if operation is None:
        raise InvalidStep(f"There is no operation {op_name!r}")
    unknown = set(values) - {param.name for param in operation.params}
    if unknown:
        raise InvalidStep(f"{operation.label} has no {', '.join(sorted(unknown))}")
    built: dict[str, Any] = {"op": op_name}
    for param in operation.params:
        value = values.get(param.name)
        if param.optional and not value:
            continue
        if value is None:
            raise InvalidStep(f"{operation.label} needs a {param.name}")
        built[param.name] = param.checked(value)
    if op_name == "resize" and len(built) == 1:
        raise InvalidStep("Give a width, a height, or both")
    return built


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_operation(operation: dict[str, Any]) -> str:
    """`Contrast (factor 1.3)`, `Flip (vertical)`; an operation this dashboard does not know
    keeps the API's spelling."""
    name = str(operation.get("op", "?"))
    known = OPERATIONS.get(name)
    values = {key: value for key, value in operation.items() if key != "op"}
    if known is None:
        parameters = ", ".join(f"{key}={value}" for key, value in values.items())
        return f"{name}({parameters})" if parameters else name
    parts = []
    for param in known.params:
        value = values.get(param.name)
        if value is not None:
            text = _value_text(value)
            parts.append(text if param.options else f"{param.name} {text}")
    return f"{known.label} ({', '.join(parts)})" if parts else known.label


def describe_operations(operations: list[dict[str, Any]] | None) -> str:
    return " → ".join(describe_operation(op) for op in operations or []) or "—"


def step_text(operation: dict[str, Any]) -> str:
    """A step as the address keeps it: the op, then each parameter's name and value."""
    words = [str(operation["op"])]
    for name, value in operation.items():
        if name != "op":
            words += [name, _value_text(value)]
    return " ".join(words)


def parse_step(text: str) -> dict[str, Any]:
    """The step `step_text` wrote; InvalidStep for anything the API would refuse."""
    op_name, *words = text.split() or [""]
    if len(words) % 2:
        raise InvalidStep("Each parameter needs a name and a value")
    return build_operation(op_name, dict(zip(words[::2], words[1::2], strict=True)))
