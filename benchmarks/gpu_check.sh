#!/usr/bin/env bash
# GPU check (issue 18, part 4): CUDA latency tables (graph replay + eager) for the small presets,
# their verification on held-out random networks, and DARTS / ProxylessNAS search-step speed against
# the naive supernet. One run, <= 8 minutes on one GPU; every step has its own timeout, a failed
# step is recorded and the next one runs anyway.
#
#   PYTHONPATH=. bash benchmarks/gpu_check.sh            # from the repository root
#
# Writes under ${OUT:-benchmarks/results/gpu}: gpu_check.log (everything printed), gpu_check.md
# (the summary), gpu_check.json (all numbers, per-network results, table sidecars), and the tables
# as <device>/<backend>.csv (<backend>.raw.csv if pandas is missing). Without CUDA, or with
# GPU_CHECK_DRY=1, it runs the same steps on torch-cpu with tiny settings (a plumbing test).
# Per-step timeouts (seconds) can be overridden: T_ENV T_TABLES T_VERIFY T_THROUGHPUT; GPU_CHECK_SKIP
# lists steps not to run (e.g. "throughput").
set -u -o pipefail
export PYTHONUNBUFFERED=1

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$ROOT"
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
PY=${PYTHON:-python}
command -v "$PY" >/dev/null 2>&1 || PY=python3

T_ENV=${T_ENV:-30}
T_TABLES=${T_TABLES:-165}
T_VERIFY=${T_VERIFY:-120}
T_THROUGHPUT=${T_THROUGHPUT:-120}

LOG="$OUT/gpu_check.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

echo "=== edgenas gpu_check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), repo $ROOT, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "    OUT=$OUT WORK=$WORK python=$(command -v "$PY") dry=${GPU_CHECK_DRY:-auto}"
echo "    timeouts: env ${T_ENV}s, tables ${T_TABLES}s, verify ${T_VERIFY}s, throughput ${T_THROUGHPUT}s"

summarize() {
    timeout -k 5 30 "$PY" benchmarks/gpu_check.py summarize --work "$WORK" --out "$OUT" \
        || echo "!!! summarize failed (rc $?)"
}

# step NAME TIMEOUT CMD...: run under timeout, record rc, refresh the summary; never stops the script
step() {
    local name=$1 t=$2 start rc
    shift 2
    case " ${GPU_CHECK_SKIP:-} " in *" $name "*) echo; echo "=== step $name skipped (GPU_CHECK_SKIP)"; return 0;; esac
    echo
    echo "=== [$(date -u +%H:%M:%S)] step $name (timeout ${t}s)"
    start=$(date +%s)
    timeout -k 10 "$t" "$@"
    rc=$?
    echo "{\"step\": \"$name\", \"rc\": $rc, \"timeout\": $t, \"wall_s\": $(( $(date +%s) - start ))}" >> "$WORK/shell_steps.json"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "!!! step $name hit its ${t}s timeout (rc $rc); continuing"
    elif [ "$rc" -ne 0 ]; then
        echo "!!! step $name failed (rc $rc); continuing"
    fi
    summarize
    return 0
}

echo
echo "=== [$(date -u +%H:%M:%S)] environment"
"$PY" --version
timeout 10 nvidia-smi -L || echo "nvidia-smi -L: not available (rc $?)"
timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv 2>/dev/null || true
nproc 2>/dev/null
step env "$T_ENV" "$PY" benchmarks/gpu_check.py env --work "$WORK" --out "$OUT"
step tables "$T_TABLES" "$PY" benchmarks/gpu_check.py tables --work "$WORK" --out "$OUT" --budget $(( T_TABLES - 45 ))
step verify "$T_VERIFY" "$PY" benchmarks/gpu_check.py verify --work "$WORK" --out "$OUT"
step throughput "$T_THROUGHPUT" "$PY" benchmarks/gpu_check.py throughput --work "$WORK" --out "$OUT" \
    --budget $(( T_THROUGHPUT - 10 )) --worker-timeout 60

echo
echo "=== [$(date -u +%H:%M:%S)] done in ${SECONDS}s; summary ($OUT/gpu_check.md):"
cat "$OUT/gpu_check.md" 2>/dev/null || echo "(no summary written)"
echo
echo "=== files under $OUT:"
(cd "$OUT" && find . -type f | sort)
[ "${GPU_CHECK_KEEP:-0}" = 1 ] || rm -rf "$WORK"
exec 1>&- 2>&-
wait "$TEE_PID" 2>/dev/null || sleep 1  # let tee write the last lines of the log
exit 0
