#!/usr/bin/env bash
# MAAP DPS entry point for opera-disp-subset (product subset, the default, or timeseries).
#
#   run.sh P1 ... PN          legacy DPS: exactly N positionals in algorithm_config.yaml order,
#                             any of them '' (= not given)
#   run.sh --name value ...   OGC/CWL style (names as in algorithm_config.yaml)
#   run.sh --demo             run on the embedded sample archive
#   run.sh --help
#
# Options or positionals: exactly N arguments are always the N positionals, whatever they
# look like (a granules input '--help' is that input, never an option). Any other count is
# options: a lone --help (-h) or --demo, else --name value pairs (the first argument a
# --name; a value is never read as an option). N is odd and pairs are even, so a call is
# never ambiguous.
#
# Inputs DPS downloaded sit in ./input (symlinks); outputs go to ./output; the log goes to
# ./opera-disp.log (kept by DPS triage when the job fails) and is copied into ./output when
# opera-disp ends, whatever its exit. Neither log is ever written through a symbolic link:
# a link planted at either name is replaced. DPS cancels a job by signalling this process:
# SIGTERM and SIGINT are passed on to opera-disp, which ends the job, and run.sh waits for
# it. Exit codes: 0 ok, 1 too many granules failed (or a bug), 2 bad input (also an
# ./output that is not a folder), 3 nothing matched, 4 a service unreachable or refusing
# authentication, 130 interrupted (SIGINT), 143 terminated (SIGTERM: a cancelled job;
# granules in flight finish, summary.json says `interrupted`).
set -euo pipefail

basedir=$(dirname "$(readlink -f "$0")")
# The inputs' names, in the order DPS passes them, and how each reaches opera-disp.
# >>> generated from the options model by `python -m opera_disp.cwl`; do not edit
names=(granules bbox aoi window start end frame layers mask tolerated_failure_percentage workers limit access cmr_url cog_writer product corrections nan_policy reference_point reference_method coherence_threshold seasonal min_valid_fraction allow_gaps cube date_cogs points quicklooks stac steps postseismic deramp mintpy vmin vmax)
# Inputs only one product takes (the others take both).
subset_only=" cog_writer quicklooks "
series_only=" corrections nan_policy reference_point reference_method coherence_threshold seasonal min_valid_fraction allow_gaps cube date_cogs points steps postseismic deramp mintpy "
# Yes/no inputs: their option when true (and when false, if it has one).
declare -A flag_true=([allow_gaps]=--allow-gaps [date_cogs]=--date-cogs [quicklooks]=--quicklooks [stac]=--stac [mintpy]=--mintpy)
declare -A flag_false=([quicklooks]=--no-quicklooks [stac]=--no-stac)
# Inputs the time series takes under another option name.
declare -A series_option=([layers]=--layer [steps]=--step)
# <<< generated
n=${#names[@]}
log="$PWD/opera-disp.log"
outdir="$PWD/output"

# The log opera-disp appends to is this job's: a link planted there goes (its target is
# never written), before anything is logged.
replaced_log_link=
if [[ -L $log ]]; then
  rm -f -- "$log"
  replaced_log_link=1
fi
if [[ -e $log && ! -f $log ]]; then
  echo "run.sh: $log exists and is not a file; remove it" >&2
  exit 2
fi

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
  [[ -L $log ]] || echo "run.sh: error: $1" >>"$log" 2>/dev/null || true
  exit 2
}

# Copy the log into ./output (what DPS publishes) without following a link: a new file
# made there (mktemp: O_EXCL) renamed over the name (a link there is removed first; a
# rename never writes through one).
copy_log() {
  local dest="$outdir/opera-disp.log" tmp
  if [[ ! -d $outdir || ( -d $dest && ! -L $dest ) ]]; then
    echo "run.sh: the log is not copied into $outdir; it stays at $log" >&2
    return 0
  fi
  if tmp=$(mktemp "$outdir/.opera-disp.log.XXXXXX" 2>/dev/null); then
    if cat -- "$log" >"$tmp" && { [[ ! -L $dest ]] || rm -f -- "$dest"; } \
        && mv -f -- "$tmp" "$dest"; then
      return 0
    fi
    rm -f -- "$tmp"
  fi
  echo "run.sh: cannot copy the log into $outdir; it stays at $log" >&2
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
# Exactly N arguments are the positionals, whatever they look like (see the top).
mode=positional
if [[ $# -ne $n && $# -ge 1 ]]; then
  if [[ $# -eq 1 && ( $1 == --help || $1 == -h ) ]]; then
    usage
    exit 0
  elif [[ $# -eq 1 && $1 == --demo ]]; then
    mode=demo
  elif [[ $1 == --?* ]]; then
    mode=keyword
  fi
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

args+=(--output "$outdir" --log-file "$log")
find_cli

if [[ -n "${OPERA_DISP_DRY_RUN:-}" ]]; then
  printf '%s\n' "$product" "${args[@]}"
  exit 0
fi

# ./output itself may be a link to a folder elsewhere (as the CLI's -o may); links below
# it are never followed.
if [[ -e $outdir && ! -d $outdir ]]; then
  fail "output $outdir exists and is not a folder; remove it"
fi
mkdir -p -- "$outdir" 2>/dev/null || fail "output folder $outdir cannot be created"
[[ -n $replaced_log_link ]] && echo "run.sh: $log was a symbolic link; replaced" >>"$log"
echo "run.sh: ${cli[*]} $product ${args[*]}" >>"$log"

# DPS signals this process, not its group: pass SIGTERM/SIGINT on to opera-disp (which
# ends the job and writes its summary), then wait for it to end.
child=
signalled=
forward() {
  signalled=$1
  # The whole process group: on MAAP the child is `conda run`, which does not pass a
  # signal on to the opera-disp it started.
  if [[ -n $child ]]; then
    kill -s "$1" -- -"$child" 2>/dev/null || kill -s "$1" "$child" 2>/dev/null || true
  fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
# A process group of its own (set -m): a background job's SIGINT is otherwise ignored,
# and a terminal's Ctrl-C reaches opera-disp once, through forward, not twice.
set -m
"${cli[@]}" "$product" "${args[@]}" &
child=$!
set +m
if [[ -n $signalled ]]; then forward "$signalled"; fi
status=0
while :; do
  signalled=
  wait "$child" && status=0 || status=$?
  # A trapped signal ends `wait` early (status > 128): wait again for opera-disp itself.
  if [[ -z $signalled ]]; then break; fi
done
# A wrapper (conda run) may end before the program it started: wait for the whole group.
while kill -0 -- -"$child" 2>/dev/null; do sleep 0.2; done
trap - TERM INT
copy_log
if [[ $status -eq 0 ]]; then
  echo "run.sh: outputs in $outdir"
else
  echo "run.sh: opera-disp exited with status $status; see $log" >&2
fi
exit $status
