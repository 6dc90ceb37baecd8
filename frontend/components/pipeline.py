"""The pipeline builder: add, reorder and remove steps with their parameters.

The steps live in the browser session and, so that a reload keeps them, in the page's address:
one `query_param` value per step (`?step=sepia&step=contrast+factor+1.3`). The API validates
again; its 422 message is shown as written when something slips through.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from frontend.components.operations import (
    MAX_OPERATIONS,
    OPERATIONS,
    InvalidStep,
    Param,
    build_operation,
    describe_operation,
    parse_step,
    step_text,
)


def _steps_key(key: str) -> str:
    return f"{key}_pipeline"


def _from_address(query_param: str) -> list[dict[str, Any]]:
    """The steps the address holds (after a reload); says which it leaves out and why."""
    texts = st.query_params.get_all(query_param)
    if len(texts) > MAX_OPERATIONS:
        st.warning(f"Kept the first {MAX_OPERATIONS} steps of the address: there can be no more.")
    restored = []
    for text in texts[:MAX_OPERATIONS]:
        try:
            restored.append(parse_step(text))
        except InvalidStep as error:
            st.warning(f"Left out the step “{text}” of the address: {error}.")
    return restored


def _steps(key: str, query_param: str) -> list[dict[str, Any]]:
    """The operations built so far under `key`, in order."""
    if _steps_key(key) not in st.session_state:
        st.session_state[_steps_key(key)] = _from_address(query_param)
    return st.session_state[_steps_key(key)]


def _keep_in_address(query_param: str, ops: list[dict[str, Any]]) -> None:
    texts = [step_text(operation) for operation in ops]
    if st.query_params.get_all(query_param) == texts:
        return
    if texts:
        st.query_params[query_param] = texts
    else:
        del st.query_params[query_param]


def _move(key: str, index: int, offset: int) -> None:
    ops = st.session_state[_steps_key(key)]
    target = index + offset
    if 0 <= target < len(ops):
        ops[index], ops[target] = ops[target], ops[index]


def _remove(key: str, index: int) -> None:
    st.session_state[_steps_key(key)].pop(index)


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


def pipeline_builder(key: str, query_param: str) -> list[dict[str, Any]]:
    """Renders the builder; returns the current list of operations."""
    ops = _steps(key, query_param)
    if ops:
        for index, operation in enumerate(ops):
            text, up, down, remove = st.columns([6, 1, 1, 1], vertical_alignment="center")
            text.markdown(f"**{index + 1}.** {describe_operation(operation)}")
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
            try:
                ops.append(build_operation(op_name, values))
            except InvalidStep as error:
                st.error(f"{error}.")
            else:
                st.rerun()
    _keep_in_address(query_param, ops)
    return ops
