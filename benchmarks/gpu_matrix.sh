#!/usr/bin/env bash
# Every GPU check and benchmark in one go, for a GPU that is lent for minutes: each step writes its own file
# under OUT_DIR as it finishes, so a step that fails or runs out of time costs only its own result.
#
#   bash benchmarks/gpu_matrix.sh OUT_DIR [N] [DEV_EVAL_DIR]
#
# N: 640x480 JPEGs in the throughput corpus (default 12000). DEV_EVAL_DIR: a labelled 0_real/1_fake set;
# when given, its AP is computed at each precision on the GPU (what "auto" may pick there).
set -u
out=${1:?usage: gpu_matrix.sh OUT_DIR [N] [DEV_EVAL_DIR]}
n=${2:-12000}
dev=${3:-}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT_DIR/NAME.txt, print its status
    local name=$1 limit=$2 started status
    shift 2
    echo "== $name: $*"
    started=$(date +%s.%N)
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    status=$?
    echo "== $name: exit $status after $("$py" -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$started") s" \
        | tee -a "$out/$name.txt"
}

{ nvidia-smi; "$py" -c "import torch, torchvision, PIL; print(torch.__version__, torchvision.__version__, PIL.__version__)"; nproc; } >"$out/machine.txt" 2>&1
step tests 120 "$py" -m pytest -q -p no:cacheprovider -x tests/library/test_device_decode.py tests/library/test_fast_path.py tests/library/test_preprocess.py
step compare 90 "$py" benchmarks/bench_scan.py --device cuda --compare-decoders --n 2048 --batch-size 256
step bench 300 "$py" benchmarks/bench_scan.py --device cuda --n "$n" --batch-size 256 --model-images 2048 \
    --model-passes 8 --out "$out/bench.md"
step memory 120 "$py" benchmarks/bench_scan.py --device cuda --memory-check --memory-check-n 100000 \
    --batch-size 256 --out "$out/memory.md"
if [ -n "$dev" ]; then
    for precision in fp32 mixed bf16; do
        step "eval-$precision" 60 "$py" -m ipdscan eval "$dev" --device cuda --precision "$precision" -q
    done
fi
corpus=$(ls -d data/bench/640x480-n"$n"-seed0 2>/dev/null)
if [ -n "$corpus" ]; then  # the scan alone, at other worker counts and batch sizes, on the corpus just built
    for setting in "4 256" "12 256" "8 512" "8 128"; do
        set -- $setting
        step "sweep-w$1-b$2" 60 "$py" -m ipdscan scan "$corpus" --device cuda --workers "$1" --batch-size "$2" \
            --out "$out/sweep.jsonl" --quiet
    done
    rm -f "$out/sweep.jsonl"
fi
