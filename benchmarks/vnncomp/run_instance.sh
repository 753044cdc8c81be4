#!/usr/bin/env bash
# VNN-COMP: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
# Writes the result file: 'unsat', 'sat' plus the counterexample, 'unknown', 'timeout' or 'error'.
set -euo pipefail

if [[ $# -ne 6 ]]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2
    exit 1
fi
VERSION="$1"; CATEGORY="$2"; ONNX="$3"; VNNLIB="$4"; RESULTS_FILE="$5"; TIMEOUT="$6"
if [[ "$VERSION" != "v1" ]]; then
    echo "error: expected version 'v1', got '${VERSION}'" >&2
    exit 1
fi
PYTHON="${PYTHON:-python3}"

echo "running completeverify on category '${CATEGORY}' with timeout ${TIMEOUT}: ${ONNX} ${VNNLIB}"
rm -f "$RESULTS_FILE"
rc=0
"$PYTHON" -m completeverify verify "$ONNX" "$VNNLIB" --result-file "$RESULTS_FILE" --timeout "$TIMEOUT" || rc=$?
if [[ $rc -ne 0 && ! -s "$RESULTS_FILE" ]]; then
    # bad input (2) or internal error (1): the verifier wrote no verdict
    echo "error" > "$RESULTS_FILE"
fi
exit 0
