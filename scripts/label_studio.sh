#!/usr/bin/env bash
# Install Label Studio into its own virtual environment, .venv-ls at the repository root.
#
# Label Studio pins Django and many other packages, so it never goes into .venv. Idempotent: when
# .venv-ls already has a working label-studio of the wanted version this does nothing. Quiet unless
# it fails, in which case the pip log is printed.
#
# Environment: PYTHON (default python3.11), LABEL_STUDIO_VERSION (default 1.23.*).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv-ls"
python="${PYTHON:-python3.11}"
version="${LABEL_STUDIO_VERSION:-1.23.*}"

installed_ok() {
    [[ -x "${venv}/bin/label-studio" ]] || return 1
    local have
    have="$("${venv}/bin/python" -c \
        'import importlib.metadata as m; print(m.version("label-studio"))' 2>/dev/null)" || return 1
    # The version spec is a glob such as 1.23.*; bash pattern matching reads it the same way.
    # shellcheck disable=SC2053
    [[ "${have}" == ${version} ]]
}

if installed_ok; then
    exit 0
fi

log="$(mktemp -t label-studio-install.XXXXXX.log)"
trap 'rm -f "${log}"' EXIT

if ! {
    [[ -x "${venv}/bin/python" ]] || "${python}" -m venv "${venv}"
    "${venv}/bin/python" -m pip install --quiet --upgrade pip
    "${venv}/bin/python" -m pip install --quiet "label-studio==${version}"
} >"${log}" 2>&1; then
    echo "label_studio.sh: installing label-studio==${version} into ${venv} failed:" >&2
    cat "${log}" >&2
    exit 1
fi

if ! installed_ok; then
    echo "label_studio.sh: ${venv}/bin/label-studio is missing after install" >&2
    exit 1
fi
