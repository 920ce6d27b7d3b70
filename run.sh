#!/usr/bin/env bash
# MAAP DPS entry point for opera-disp-subset (product subset, the default, or timeseries).
#
#   run.sh P1 ... PN          legacy DPS: exactly N positionals in algorithm_config.yaml order,
#                             any of them '' (= not given)
#   run.sh --name value ...   OGC/CWL style (names as in algorithm_config.yaml)
#   run.sh --demo             run on the embedded sample archive
#   run.sh --help
#
# Inputs DPS downloaded sit in ./input (symlinks); outputs go to ./output; the log goes to
# ./opera-disp.log (kept by DPS triage when the job fails) and is copied into ./output on
# success. Exit codes: 0 ok, 1 too many granules failed (or a bug), 2 bad input, 3 nothing
# matched, 4 a service unreachable or refusing authentication, 130 interrupted (SIGINT),
# 143 terminated (SIGTERM: a cancelled job; granules in flight finish, summary.json says
# `interrupted`).
set -euo pipefail

basedir=$(dirname "$(readlink -f "$0")")
# The inputs' names, in the order DPS passes them, and how each reaches opera-disp.
# >>> generated from the options model by `python -m opera_disp.cwl`; do not edit
names=(granules bbox aoi window start end frame layers mask tolerated_failure_percentage workers limit access cmr_url cog_writer product corrections nan_policy reference_point reference_method coherence_threshold seasonal min_valid_fraction allow_gaps cube date_cogs points quicklooks stac)
# Inputs only one product takes (the others take both).
subset_only=" cog_writer quicklooks "
series_only=" corrections nan_policy reference_point reference_method coherence_threshold seasonal min_valid_fraction allow_gaps cube date_cogs points "
# Yes/no inputs: their option when true (and when false, if it has one).
declare -A flag_true=([seasonal]=--seasonal [allow_gaps]=--allow-gaps [date_cogs]=--date-cogs [quicklooks]=--quicklooks [stac]=--stac)
declare -A flag_false=([quicklooks]=--no-quicklooks [stac]=--no-stac)
# Inputs the time series takes under another option name.
declare -A series_option=([layers]=--layer)
# <<< generated
n=${#names[@]}

usage() {
  cat <<USAGE
usage: run.sh ${names[*]}
       run.sh --name value ...   (names: granule_list ${names[*]})
       run.sh --demo | --help
Exactly $n positional inputs, in that order; pass '' for any not given.
USAGE
}

# A bad-input line goes to stderr and to the log DPS keeps when a job fails; exit 2.
fail() {
  echo "run.sh: $1" >&2
  echo "run.sh: error: $1" >>"$PWD/opera-disp.log" 2>/dev/null || true
  exit 2
}

find_cli() {
  if [[ -n "${OPERA_DISP_CLI:-}" ]]; then
    read -r -a cli <<<"$OPERA_DISP_CLI"
  elif [[ -x "$basedir/.venv/bin/opera-disp" ]]; then
    cli=("$basedir/.venv/bin/opera-disp")
  elif command -v conda >/dev/null 2>&1 && conda env list | awk '{print $1}' | grep -qx "${OPERA_DISP_ENV_NAME:-opera-disp}"; then
    cli=(conda run --no-capture-output -n "${OPERA_DISP_ENV_NAME:-opera-disp}" opera-disp)
  elif command -v opera-disp >/dev/null 2>&1; then
    cli=(opera-disp)
  else
    echo "run.sh: opera-disp is not installed; run $basedir/build.sh first" >&2
    exit 2
  fi
}

declare -A given=()
mode=positional
if [[ $# -ge 1 ]]; then
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --demo) mode=demo ;;
    --*) mode=keyword ;;
  esac
fi

if [[ $mode == keyword ]]; then
  while [[ $# -gt 0 ]]; do
    key=${1#--}; key=${key//-/_}
    if [[ $1 != --* || $# -lt 2 ]]; then
      fail "expected --name value pairs, got '$1'; see run.sh --help"
    fi
    if [[ " granule_list ${names[*]} " != *" $key "* ]]; then
      fail "unknown input '--$key'; allowed: granule_list ${names[*]}"
    fi
    given[$key]=$2
    shift 2
  done
elif [[ $mode == positional ]]; then
  if [[ $# -ne $n ]]; then
    fail "expected $n positional inputs (${names[*]}; '' for any not given), got $#; see run.sh --help"
  fi
  positionals=("$@")
  for i in "${!names[@]}"; do
    given[${names[$i]}]=${positionals[$i]}
  done
fi

product=${given[product]:-subset}
case "$product" in
  subset|timeseries) ;;
  *) fail "product '$product' is not allowed; choose subset or timeseries" ;;
esac

args=()
for name in "${names[@]}"; do
  value=${given[$name]:-}
  [[ -z "$value" || $name == product ]] && continue
  if [[ $product == subset && "$series_only" == *" $name "* ]]; then
    fail "input '$name' applies to product timeseries only (product is subset)"
  fi
  if [[ $product == timeseries && "$subset_only" == *" $name "* ]]; then
    fail "input '$name' applies to product subset only (product is timeseries)"
  fi
  if [[ -n "${flag_true[$name]:-}" ]]; then
    case "${value,,}" in
      true|yes|1) args+=("${flag_true[$name]}") ;;
      false|no|0) [[ -n "${flag_false[$name]:-}" ]] && args+=("${flag_false[$name]}") ;;
      *) fail "input '$name' is '$value'; expected true or false" ;;
    esac
    continue
  fi
  option="--${name//_/-}"
  [[ $product == timeseries && -n "${series_option[$name]:-}" ]] && option=${series_option[$name]}
  args+=("$option" "$value")
done

# File inputs DPS localised into ./input: a .nc granule makes ./input an archive to
# search; any other file is the granule list.
list=${given[granule_list]:-}
if [[ -z "$list" && -d "$PWD/input" ]]; then
  shopt -s nullglob
  nc=("$PWD"/input/*.nc)
  others=()
  for f in "$PWD"/input/*; do [[ "$f" != *.nc ]] && others+=("$f"); done
  shopt -u nullglob
  if [[ ${#nc[@]} -gt 0 ]]; then
    args+=(--source "$PWD/input")
  elif [[ ${#others[@]} -eq 1 ]]; then
    list=${others[0]}
  elif [[ ${#others[@]} -gt 1 ]]; then
    fail "./input holds ${#others[@]} files; expected one granule list"
  fi
fi
[[ -n "$list" ]] && args+=(--granule-list "$list")
[[ $mode == demo ]] && args=(--demo)

outdir="$PWD/output"
log="$PWD/opera-disp.log"
args+=(--output "$outdir" --log-file "$log")
find_cli

if [[ -n "${OPERA_DISP_DRY_RUN:-}" ]]; then
  printf '%s\n' "$product" "${args[@]}"
  exit 0
fi

mkdir -p "$outdir"
echo "run.sh: ${cli[*]} $product ${args[*]}" >>"$log"
status=0
"${cli[@]}" "$product" "${args[@]}" || status=$?
if [[ $status -eq 0 ]]; then
  cp "$log" "$outdir/opera-disp.log"
  echo "run.sh: outputs in $outdir"
else
  echo "run.sh: opera-disp exited with status $status; see $log" >&2
fi
exit $status
