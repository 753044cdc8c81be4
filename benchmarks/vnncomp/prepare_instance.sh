#!/usr/bin/env bash
# VNN-COMP: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Ends verifier processes a previous run_instance.sh of this tool left behind (only those whose
# pid it recorded), checks both files, and warms the import cache so that run_instance's clock is
# spent verifying.  Exit 0 means the instance will be run; a non-zero exit skips it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ $# -ne 4 ]]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB" >&2
    exit 1
fi
check_version "$1"
CATEGORY="$2"; ONNX="$3"; VNNLIB="$4"
echo "preparing completeverify for category '${CATEGORY}': ${ONNX} ${VNNLIB}"

# leftover verifiers: each run_instance.sh records its verifier's process group in PID_DIR
if [[ -d "$PID_DIR" ]]; then
    for f in "$PID_DIR"/*.pid; do
        [[ -e "$f" ]] || continue
        pid="$(cat "$f" 2>/dev/null || true)"
        if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' < "/proc/${pid}/cmdline" 2>/dev/null | grep -q -- "-m completeverify verify"; then
            echo "ending leftover verifier process group ${pid}"
            kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            sleep 1
            kill -KILL -- "-${pid}" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
fi

for f in "$ONNX" "$VNNLIB"; do
    if [[ ! -f "$f" ]]; then
        echo "error: file not found: $f" >&2
        exit 1
    fi
done
# warm the import cache (bytecode and the shared libraries' pages) for run_instance.sh
"$PY" -c "import torch, onnx, onnxruntime, highspy, yaml, completeverify.pipeline, completeverify.cli" >/dev/null
exit 0
