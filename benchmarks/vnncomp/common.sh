# Shared by the three VNN-COMP scripts (sourced, not run).
#
# Which Python runs the tool:
#   COMPLETEVERIFY_PYTHON  an existing interpreter that already has (or gets) completeverify;
#                          no virtual environment is made (the end-to-end test uses this to
#                          avoid reinstalling torch)
#   COMPLETEVERIFY_VENV    the tool's own virtual environment (default: <repo>/.vnncomp-venv)
TOOL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${COMPLETEVERIFY_VENV:-${TOOL_DIR}/.vnncomp-venv}"
PY="${COMPLETEVERIFY_PYTHON:-${VENV}/bin/python}"
# pid files of running verifier processes, so that prepare_instance.sh ends only this tool's
PID_DIR="${COMPLETEVERIFY_PID_DIR:-${TMPDIR:-/tmp}/completeverify-vnncomp-$(id -u)}"
TORCH_VERSION="2.13.0"

check_version() {
    if [[ "${1:-}" != "v1" ]]; then
        echo "error: expected version 'v1', got '${1:-}'" >&2
        exit 1
    fi
}

# The config file for a category: benchmarks/configs/<category>.yaml, else the category
# without a trailing year (acasxu_2023 -> acasxu), else default.yaml.
config_for() {
    local category="$1" dir="${TOOL_DIR}/benchmarks/configs"
    local base="${category%_20[0-9][0-9]}"
    for name in "$category" "$base" default; do
        if [[ -n "$name" && -f "${dir}/${name}.yaml" ]]; then
            echo "${dir}/${name}.yaml"
            return
        fi
    done
}
