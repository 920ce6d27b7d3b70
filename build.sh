#!/usr/bin/env bash
# Build the opera-disp environment.  Usage: build.sh [--venv|--conda]
#  - On MAAP images (conda or mamba on PATH): create or update the conda env "opera-disp"
#    from environment.yml, then install this package into it without touching its deps.
#  - Elsewhere: create ./.venv with pip and install the package with its test extras.
# Idempotent: a second run with unchanged dependency files is a fast no-op.
set -euo pipefail

mode=${OPERA_DISP_BUILD:-auto}
case "${1:-}" in
  --venv) mode=venv ;;
  --conda) mode=conda ;;
  "") ;;
  *) echo "usage: build.sh [--venv|--conda]" >&2; exit 2 ;;
esac

basedir=$(dirname "$(readlink -f "$0")")
env_name=${OPERA_DISP_ENV_NAME:-opera-disp}
stamp_of() { cat "$basedir/pyproject.toml" "$basedir/environment.yml" | sha256sum | cut -d' ' -f1; }
want=$(stamp_of)

use_conda=0
if [[ $mode == conda ]]; then
  use_conda=1
elif [[ $mode == auto ]] && command -v conda >/dev/null 2>&1; then
  use_conda=1
fi

if [[ $use_conda == 1 ]]; then
  solver=conda
  command -v mamba >/dev/null 2>&1 && solver=mamba
  stamp="$basedir/.build-stamp"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "conda:$want" ]] \
     && conda run -n "$env_name" python -c 'import opera_disp' >/dev/null 2>&1; then
    echo "build.sh: conda env '$env_name' is up to date"
    exit 0
  fi
  if conda env list | awk '{print $1}' | grep -qx "$env_name"; then
    "$solver" env update -n "$env_name" -f "$basedir/environment.yml"
  else
    "$solver" env create -n "$env_name" -f "$basedir/environment.yml"
  fi
  conda run -n "$env_name" python -m pip install --no-deps "$basedir"
  # Smoke test: a broken environment must fail the build, not the first job.
  conda run -n "$env_name" python -c 'import opera_disp, rasterio, h5py; from maap.maap import MAAP'
  echo "conda:$want" >"$stamp"
  conda clean -afy >/dev/null 2>&1 || true
  echo "build.sh: conda env '$env_name' ready"
else
  venv="$basedir/.venv"
  stamp="$venv/.build-stamp"
  if [[ -x "$venv/bin/opera-disp" && -f "$stamp" && "$(cat "$stamp")" == "venv:$want" ]]; then
    echo "build.sh: $venv is up to date"
    exit 0
  fi
  python=${PYTHON:-python3}
  "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "opera-disp needs Python >= 3.11")'
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$basedir[test]"
  "$venv/bin/python" -c 'import opera_disp, rasterio, h5py; from maap.maap import MAAP'
  echo "venv:$want" >"$stamp"
  echo "build.sh: $venv ready"
fi
