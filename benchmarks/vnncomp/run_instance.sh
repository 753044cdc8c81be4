#!/usr/bin/env bash
# VNN-COMP: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
# Verifies with the category's options (benchmarks/configs/<CATEGORY>.yaml, else default.yaml)
# and the given timeout, and writes the result file: 'unsat', 'sat' plus the counterexample,
# 'unknown', 'timeout' or 'error'.  The verifier stops itself at TIMEOUT (plus a 2 s grace);
# a hard kill 10 s later is the backstop, after which the result is 'timeout'.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ $# -ne 6 ]]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2
    exit 1
fi
check_version "$1"
CATEGORY="$2"; ONNX="$3"; VNNLIB="$4"; RESULTS_FILE="$5"; TIMEOUT="$6"
CONFIG="$(config_for "$CATEGORY")"
echo "running completeverify on category '${CATEGORY}' (config ${CONFIG:-none}) with timeout ${TIMEOUT}: ${ONNX} ${VNNLIB}"
rm -f "$RESULTS_FILE"
HARD_LIMIT="$(awk -v t="$TIMEOUT" 'BEGIN { printf "%.3f", t + 10 }')"
args=(verify "$ONNX" "$VNNLIB" --result-file "$RESULTS_FILE" --timeout "$TIMEOUT")
if [[ -n "$CONFIG" ]]; then
    args+=(--config "$CONFIG")
fi

mkdir -p "$PID_DIR"
rc=0
# own process group (setsid) so prepare_instance.sh can end every process of a leftover run
setsid timeout --kill-after=2 "$HARD_LIMIT" "$PY" -m completeverify "${args[@]}" &
child=$!
echo "$child" > "${PID_DIR}/${child}.pid"
wait "$child" || rc=$?
rm -f "${PID_DIR}/${child}.pid"
if [[ ! -s "$RESULTS_FILE" ]]; then
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "timeout" > "$RESULTS_FILE"
    else
        # bad input (2) or internal error (1): the verifier wrote no verdict
        echo "error" > "$RESULTS_FILE"
    fi
fi
exit 0
