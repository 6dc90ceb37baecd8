"""The pipeline builder: add, reorder and remove operations with their parameters.

The parameter ranges are the API's (tests/frontend/test_pipeline_schema.py compares them with
its OpenAPI schema); the API validates again and its 422 message is shown as written when
something slips through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from frontend.components.formatting import describe_operation

MAX_OPERATIONS = 10


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


def _steps_key(key: str) -> str:
    return f"{key}_pipeline"


def steps(key: str) -> list[dict[str, Any]]:
    """The operations built so far under `key`, in order."""
    return st.session_state.setdefault(_steps_key(key), [])


def _move(key: str, index: int, offset: int) -> None:
    ops = steps(key)
    target = index + offset
    if 0 <= target < len(ops):
        ops[index], ops[target] = ops[target], ops[index]


def _remove(key: str, index: int) -> None:
    steps(key).pop(index)


def _param_input(key: str, op_name: str, param: Param) -> Any:
    widget_key = f"{key}_{op_name}_{param.name}"
    if param.options:
        return st.selectbox(param.label, param.options, key=widget_key)
    return st.number_input(
        param.label,
        min_value=0 if param.optional else param.minimum,
        max_value=param.maximum,
        value=param.default,
        step=param.step,
        key=widget_key,
    )


def _operation_from(op_name: str, values: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The operation to add, or None and why not."""
    operation: dict[str, Any] = {"op": op_name}
    if op_name == "resize":
        for side in ("width", "height"):
            if values[side]:
                operation[side] = int(values[side])
        if len(operation) == 1:
            return None, "Give a width, a height, or both."
        return operation, ""
    operation.update(values)
    return operation, ""


def pipeline_builder(key: str) -> list[dict[str, Any]]:
    """Renders the builder; returns the current list of operations."""
    ops = steps(key)
    if ops:
        for index, operation in enumerate(ops):
            text, up, down, remove = st.columns([6, 1, 1, 1], vertical_alignment="center")
            text.markdown(f"**{index + 1}.** `{describe_operation(operation)}`")
            up.button(
                "",
                icon=":material/arrow_upward:",
                key=f"{key}_up_{index}",
                disabled=index == 0,
                on_click=_move,
                args=(key, index, -1),
                help="Move up",
            )
            down.button(
                "",
                icon=":material/arrow_downward:",
                key=f"{key}_down_{index}",
                disabled=index == len(ops) - 1,
                on_click=_move,
                args=(key, index, 1),
                help="Move down",
            )
            remove.button(
                "",
                icon=":material/close:",
                key=f"{key}_remove_{index}",
                on_click=_remove,
                args=(key, index),
                help="Remove",
            )
    else:
        st.caption("No steps yet: add the first one below. Steps run from top to bottom.")

    with st.container(border=True):
        op_name = st.selectbox(
            "Add a step",
            list(OPERATIONS),
            format_func=lambda name: OPERATIONS[name].label,
            key=f"{key}_new_op",
        )
        values = {
            param.name: _param_input(key, op_name, param) for param in OPERATIONS[op_name].params
        }
        full = len(ops) >= MAX_OPERATIONS
        if st.button(
            "Add step",
            icon=":material/add:",
            key=f"{key}_add",
            disabled=full,
            help=f"At most {MAX_OPERATIONS} steps" if full else None,
        ):
            operation, problem = _operation_from(op_name, values)
            if operation is None:
                st.error(problem)
            else:
                ops.append(operation)
                st.rerun()
    return ops
