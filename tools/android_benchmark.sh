#!/bin/sh
# Time an edgenas .tflite bundle on an Android phone over adb with TFLite's benchmark_model,
# for phones without Python. Writes a log, then results.json (via edgenas_device_runner.py).
#
#   sh android_benchmark.sh BUNDLE.zip|BUNDLE_DIR /path/to/benchmark_model [results.json]
#
# benchmark_model: the Android build of TFLite's tool for the phone's ABI (android_aarch64),
# from the TensorFlow / LiteRT releases. Every entry model is run right after the reference
# model of its batch, so the table gets ref_ratio as with the runner. Each run:
#   benchmark_model --graph=M --num_threads=T --use_xnnpack=true --warmup_runs=W --num_runs=N --min_secs=S
# Settings (environment): ADB (default adb; ANDROID_SERIAL picks the phone), EDGENAS_RUNS (50),
# EDGENAS_WARMUP_RUNS (10), EDGENAS_MIN_SECS (1), EDGENAS_TFLITE_VERSION (recorded as the runtime
# version), EDGENAS_KEEP=1 keeps the files on the phone. Threads come from the bundle.
# Without python3 here, it stops after the log and prints the command that makes results.json.
set -eu

usage() { echo "usage: sh $0 BUNDLE.zip|BUNDLE_DIR /path/to/benchmark_model [results.json]" >&2; exit 2; }
die() { echo "error: $*" >&2; exit "${2:-2}"; }
[ $# -ge 2 ] || usage
BUNDLE=$1; BM=$2; OUT=${3:-results.json}
ADB=${ADB:-adb}; RUNS=${EDGENAS_RUNS:-50}; WARM=${EDGENAS_WARMUP_RUNS:-10}; MINS=${EDGENAS_MIN_SECS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)

command -v "$ADB" >/dev/null 2>&1 || die "adb not found: install Android platform-tools or set ADB=/path/to/adb" 3
[ -f "$BM" ] || die "no benchmark_model binary at $BM (download the android_aarch64 build of TFLite's benchmark_model)"
state=$("$ADB" get-state 2>/dev/null </dev/null || true)
[ "$state" = "device" ] || die "no phone ready over adb (adb get-state says '${state:-nothing}'): connect it, allow USB debugging, check 'adb devices'" 3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edgenas-android.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
if [ -d "$BUNDLE" ]; then
    B=$BUNDLE
else
    [ -f "$BUNDLE" ] || die "no such bundle: $BUNDLE"
    B=$WORK/bundle
    if command -v unzip >/dev/null 2>&1; then unzip -q "$BUNDLE" -d "$B"
    elif command -v python3 >/dev/null 2>&1; then python3 -m zipfile -e "$BUNDLE" "$B"
    else die "need unzip or python3 to open $BUNDLE (or pass the unzipped directory)"; fi
fi
[ -f "$B/models.tsv" ] && [ -f "$B/manifest.json" ] || die "$BUNDLE is not an edgenas bundle (no models.tsv / manifest.json)"
BID=$(sed -n 's/^ *"bundle_id": "\([0-9a-f]*\)".*/\1/p' "$B/manifest.json" | head -n 1)
[ -n "$BID" ] || die "$BUNDLE: manifest.json has no bundle_id; rebuild the bundle"
grep -qE '"(runner_runtime|backend)": "tflite"' "$B/manifest.json" || die "benchmark_model runs .tflite models; build the bundle with --backend tflite"
R=/data/local/tmp/edgenas-$BID
LOG=${OUT%.json}.benchmark_model.log

now() { date -u +%Y-%m-%dT%H:%M:%S+00:00; }
dev() { "$ADB" shell "$@" </dev/null 2>/dev/null | tr -d '\r' || true; }  # never let adb read the model list
host_sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d ' ' -f 1; }
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }  # one shell word on the phone, whatever it holds

# models.tsv is data for a shell: it must be the very file the manifest hashes, and every field must
# have the shape the bundle builder writes (so nothing in it can reach the phone's shell as code).
TSV_SUM=$(sed -n 's/^ *"models_tsv_sha256": "\([0-9a-f]*\)".*/\1/p' "$B/manifest.json" | head -n 1)
[ -n "$TSV_SUM" ] || die "$BUNDLE: the manifest does not hash models.tsv (a bundle from an older edgenas); rebuild it with edgenas profile --bundle"
[ "$(host_sha256 "$B/models.tsv")" = "$TSV_SUM" ] || die "$BUNDLE: models.tsv does not match the hash in its manifest (edited or corrupt); rebuild the bundle"
if command -v python3 >/dev/null 2>&1; then  # the manifest itself must still hash to its bundle_id
    python3 - "$B/manifest.json" "$HERE/edgenas_device_runner.py" <<'PY' || die "$BUNDLE: the manifest was modified (it no longer hashes to its bundle_id); rebuild the bundle"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("runner", sys.argv[2])
runner = importlib.util.module_from_spec(spec); spec.loader.exec_module(runner)
m = json.load(open(sys.argv[1]))
sys.exit(0 if isinstance(m, dict) and runner.manifest_id(m) == m.get("bundle_id") else 1)
PY
fi
bad=$(grep -v -E '^[A-Za-z0-9-]{1,40}	(entry|reference)	[0-9]{1,4}	models/b[0-9]{1,4}/[A-Za-z0-9_.-]{1,64}	[0-9]{1,3}$' "$B/models.tsv" | head -n 1 || true)
[ -z "$bad" ] || die "$BUNDLE: models.tsv has a malformed line; rebuild the bundle"

echo "pushing bundle $BID to $R ..." >&2
"$ADB" shell "rm -rf $(q "$R") && mkdir -p $(q "$R")" </dev/null
"$ADB" push "$BM" "$R/benchmark_model" </dev/null >/dev/null
"$ADB" shell "chmod 755 $(q "$R/benchmark_model")" </dev/null
"$ADB" push "$B/models" "$R/" </dev/null >/dev/null

THREADS=$(head -n 1 "$B/models.tsv" | cut -f 5)
case "$RUNS$WARM$MINS" in *[!0-9.]*|"") die "EDGENAS_RUNS, EDGENAS_WARMUP_RUNS and EDGENAS_MIN_SECS must be numbers";; esac
FLAGS="--num_threads=$THREADS --use_xnnpack=true --warmup_runs=$WARM --num_runs=$RUNS --min_secs=$MINS"
{
    echo "### fact bundle_id=$BID"
    echo "### fact started_at=$(now)"
    echo "### fact threads=$THREADS"
    echo "### fact flags=$FLAGS"
    echo "### fact android=true"
    echo "### fact android_model=$(dev getprop ro.product.model)"
    echo "### fact soc_model=$(dev getprop ro.soc.model)"
    echo "### fact android_release=$(dev getprop ro.build.version.release)"
    echo "### fact machine=$(dev uname -m)"
    echo "### fact cpu_model=$(dev "grep -m 1 -E '^(Hardware|model name)' /proc/cpuinfo" | sed 's/^[^:]*: *//')"
    echo "### fact governor=$(dev cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor)"
    echo "### fact battery_temp_decic=$(dev dumpsys battery | sed -n 's/^ *temperature: *//p')"
    if [ -n "${EDGENAS_TFLITE_VERSION:-}" ]; then echo "### fact benchmark_model_version=$EDGENAS_TFLITE_VERSION"; fi
} > "$LOG"

run_one() {  # id role batch file
    echo "### edgenas-begin id=$1 role=$2 batch=$3 file=$4" >> "$LOG"
    sum=$(dev "sha256sum $(q "$R/$4")" | cut -d ' ' -f 1)
    if [ -n "$sum" ]; then echo "### sha256 $sum device" >> "$LOG"
    else echo "### sha256 $(host_sha256 "$B/$4") host" >> "$LOG"; fi  # phones without sha256sum
    rc=0
    "$ADB" shell "$(q "$R/benchmark_model") $(q "--graph=$R/$4") $FLAGS; echo \"### exit \$?\"" </dev/null > "$WORK/out" 2>&1 || rc=$?
    tr -d '\r' < "$WORK/out" | grep -v '^### exit' >> "$LOG" || true
    brc=$(tr -d '\r' < "$WORK/out" | sed -n 's/^### exit //p' | tail -n 1)
    [ -n "$brc" ] && rc=$brc
    echo "### edgenas-end id=$1 rc=$rc" >> "$LOG"
}

total=$(grep -c "	entry	" "$B/models.tsv")
n=0
grep "	entry	" "$B/models.tsv" > "$WORK/entries"
while IFS="	" read -r id role batch file threads; do
    ref=$(grep "	reference	$batch	" "$B/models.tsv" | head -n 1)
    run_one "$(echo "$ref" | cut -f 1)" reference "$batch" "$(echo "$ref" | cut -f 4)"
    run_one "$id" "$role" "$batch" "$file"
    n=$((n + 1))
    echo "edgenas-android: $n/$total $file" >&2
done < "$WORK/entries"
echo "### fact finished_at=$(now)" >> "$LOG"
[ "${EDGENAS_KEEP:-0}" = 1 ] || "$ADB" shell "rm -rf $(q "$R")" </dev/null || true

if command -v python3 >/dev/null 2>&1; then
    python3 "$HERE/edgenas_device_runner.py" benchmark-model "$BUNDLE" "$LOG" --out "$OUT" \
        --runtime-version "${EDGENAS_TFLITE_VERSION:-}"
else
    echo "log written to $LOG; on a machine with Python 3 run:" >&2
    echo "  python3 edgenas_device_runner.py benchmark-model $BUNDLE $LOG --out $OUT" >&2
fi
