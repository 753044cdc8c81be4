#!/usr/bin/env bash
# VNN-COMP: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Checks that both files exist and warms the Python imports so run_instance's clock is spent verifying.
# Exit 0 means the instance will be run; a non-zero exit skips it.
set -euo pipefail

if [[ $# -ne 4 ]]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB" >&2
    exit 1
fi
VERSION="$1"; CATEGORY="$2"; ONNX="$3"; VNNLIB="$4"
if [[ "$VERSION" != "v1" ]]; then
    echo "error: expected version 'v1', got '${VERSION}'" >&2
    exit 1
fi
PYTHON="${PYTHON:-python3}"

echo "preparing completeverify for category '${CATEGORY}': ${ONNX} ${VNNLIB}"
for f in "$ONNX" "$VNNLIB"; do
    if [[ ! -f "$f" ]]; then
        echo "error: file not found: $f" >&2
        exit 1
    fi
done
"$PYTHON" -c "import completeverify" >/dev/null
exit 0
