#!/usr/bin/env bash
# VNN-COMP: install_tool.sh v1
# Installs completeverify (CPU torch first, then this repository with onnxruntime for the replay).
set -euo pipefail

VERSION="${1:-}"
if [[ "$VERSION" != "v1" ]]; then
    echo "error: expected version 'v1', got '${VERSION}'" >&2
    exit 1
fi
TOOL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

echo "installing completeverify from ${TOOL_DIR} with ${PYTHON}"
"$PYTHON" -m pip install --upgrade pip
"$PYTHON" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
"$PYTHON" -m pip install -e "${TOOL_DIR}[onnxruntime]"
"$PYTHON" -m completeverify verify "${TOOL_DIR}/examples/mlp.onnx" "${TOOL_DIR}/examples/mlp_unsat.vnnlib" --timeout 60
