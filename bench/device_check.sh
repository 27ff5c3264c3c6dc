#!/usr/bin/env bash
# The first check on a lent GPU machine, in one command that needs nothing from outside and
# fits in about 8 minutes on one H200:
#   1. installs the carried wheels the device image lacks (.whl/, made by bench/device_prepare.sh)
#   2. a tiny CUDA experiment end to end: DARTS-space search, PT selection, retrain, MLflow to a
#      sqlite file under $OUT (the digits set: no download)
#   3. the GPU rows of bench/perf.py against the reference copy ($REF, default device_ref/)
#   4. a 2-process NCCL data-parallel retrain step under torchrun when there are 2 GPUs
#   5. the ImageNet input pipeline's images/s (bench/imagenet_input.py) with 4, 8, 16 workers
#   6. writes $OUT/device_report.md: each step's exit status and time, and their figures
# Usage (device tool):  run(command="bash bench/device_check.sh", carry=[".whl", "device_ref"])
#       here, on CPUs:  bash bench/device_check.sh --dry-run     (the same steps, tiny, on gloo,
#                       in this environment: the wheels are for the GPU image, not installed)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-$PWD/device_out}
REF=${REF:-$PWD/device_ref}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
REPORT=$OUT/device_report.md
export PYTHONUNBUFFERED=1 MLFLOW_TRACKING_URI="sqlite:///$OUT/mlflow.db"

if [ "$DRY" = 0 ] && [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then  # for the GPU image
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
else
    export PYTHONPATH=$PWD:${PYTHONPATH:-}
fi
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$DRY" = 1 ]; then DEV=cpu; SIZE=(--tiny)
    TINY=(--gin "$ROOT/gin/overrides/tiny.gin" --bind "Perturbation.subset = 4" --bind "dataset.limit = 16")
else DEV=cuda; SIZE=(); TINY=(); fi

step() {  # step NAME COMMAND...: run in $OUT (its outputs/ and mlruns/ land there, not in the
          # checkout), its output in $OUT/NAME.log, a row in the report
    local name=$1 t0=$SECONDS
    shift
    (cd "$OUT" && "$@") >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "| $name | $rc | $((SECONDS - t0)) s |" >>"$OUT/steps.md"
    return 0
}

: >"$OUT/steps.md"
TINY_RUN=(--bind "run.device = '$DEV'" --bind "search.epochs = 2" --bind "retrain.epochs = 2"
          --bind "select.tune_epochs = 1" --bind "run.experiment_name = 'device_check'")
step smoke "$PY" -m runner --gin "$ROOT/gin/quickstart.gin" --gin "$ROOT/gin/selectors/pt.gin" "${TINY[@]}" \
    "${TINY_RUN[@]}"
if [ -f "$REF/bench_reference.py" ] && [ "$DRY" = 0 ]; then
    step perf "$PY" "$ROOT/bench/perf.py" --device "$DEV" --reference "$REF"
else
    step perf "$PY" "$ROOT/bench/perf.py" --device "$DEV" --no-reference "${SIZE[@]}"
fi
DDP_RUN=(--gin "$ROOT/gin/retrain/darts_cifar10.gin" --gin "$ROOT/gin/overrides/tiny.gin"
         --gin "$ROOT/gin/data/digits.gin"
         --bind "run.genotype = \"$(sed -n 's/^genotype: //p' "$OUT/smoke.log")\""
         --bind "retrain.auxiliary_weight = 0.0" --bind "run.experiment_name = 'device_ddp'")
if [ "$GPUS" -ge 2 ] || [ "$DRY" = 1 ]; then
    [ "$DRY" = 1 ] && DDP_RUN+=(--bind "run.device = 'cpu'") || DDP_RUN+=(--bind "run.device = 'auto'")
    step ddp "$PY" -m torch.distributed.run --standalone --nproc-per-node 2 -m runner "${DDP_RUN[@]}"
else
    echo "| ddp | skipped: $GPUS GPU(s) | 0 s |" >>"$OUT/steps.md"
fi
if [ "$DRY" = 1 ]; then INPUT=(--workers 0 --images 24 --batch 8)
else INPUT=(--workers 4 8 16 --images 1536); fi
step input "$PY" "$ROOT/bench/imagenet_input.py" --device "$DEV" "${INPUT[@]}"

{
    echo "# Device check, $(date -u +%Y-%m-%dT%H:%MZ)$([ "$DRY" = 1 ] && echo ' (dry run, CPU)')"
    echo
    "$PY" -c "import torch; c = torch.cuda.is_available(); print(f'torch {torch.__version__}, ' + (f'{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}' if c else 'no CUDA'))"
    echo
    echo "| step | exit | time |"
    echo "|---|---|---|"
    cat "$OUT/steps.md"
    echo
    echo "## smoke"
    grep -E "^(genotype|final test accuracy|retrained params)" "$OUT/smoke.log"
    echo
    echo "## perf"
    sed -n '/^|/p' "$OUT/perf.log"
    echo
    echo "## ddp"
    grep -E "final test accuracy|error" "$OUT/ddp.log" 2>/dev/null | head -5 || true
    echo
    echo "## input"
    sed -n '/^|/p' "$OUT/input.log"
} >"$REPORT"
cat "$REPORT"
