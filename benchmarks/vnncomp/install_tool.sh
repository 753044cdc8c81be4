#!/usr/bin/env bash
# VNN-COMP: install_tool.sh v1
# Makes the tool's own virtual environment (<repo>/.vnncomp-venv, or $COMPLETEVERIFY_VENV) with
# the CPU build of torch==2.13.0 and this repository (onnxruntime included), then runs one
# smoke verification.  Idempotent: what is already installed at the right version is kept,
# so a second run only re-checks.  COMPLETEVERIFY_PYTHON=/path/to/python uses that
# interpreter instead of a virtual environment (see common.sh); BASE_PYTHON (default python3)
# makes the venv, COMPLETEVERIFY_VENV_ARGS adds options to `python -m venv`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "${1:-}"
BASE_PYTHON="${BASE_PYTHON:-python3}"

if [[ -z "${COMPLETEVERIFY_PYTHON:-}" && ! -x "${VENV}/bin/python" ]]; then
    echo "creating the virtual environment ${VENV}"
    # COMPLETEVERIFY_VENV_ARGS="--system-site-packages" lets the venv see an existing torch
    # shellcheck disable=SC2086
    "$BASE_PYTHON" -m venv ${COMPLETEVERIFY_VENV_ARGS:-} "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
fi
echo "installing completeverify from ${TOOL_DIR} with ${PY}"

if "$PY" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '${TORCH_VERSION}')" 2>/dev/null; then
    echo "torch ${TORCH_VERSION} already installed"
else
    "$PY" -m pip install --quiet "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
fi

# completeverify must import from THIS checkout with its core dependencies (onnxruntime, PyYAML)
if "$PY" - "$TOOL_DIR" <<'PYCHECK' 2>/dev/null
import os, sys
import completeverify, onnxruntime, yaml, highspy  # noqa: F401
root = os.path.realpath(sys.argv[1])
sys.exit(not os.path.realpath(completeverify.__file__).startswith(root + os.sep))
PYCHECK
then
    echo "completeverify already installed from ${TOOL_DIR}"
else
    "$PY" -m pip install --quiet -e "${TOOL_DIR}"
fi

"$PY" -m completeverify --version
"$PY" -m completeverify verify "${TOOL_DIR}/examples/mlp.onnx" "${TOOL_DIR}/examples/mlp_unsat.vnnlib" --timeout 60
