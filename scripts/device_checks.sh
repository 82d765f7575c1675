#!/usr/bin/env bash
# The GPU checks: the tests marked `gpu` and the benchmark tables on CUDA, as one prepared
# script for a lent GPU machine (a bare machine with PyTorch, no network, no data).
#
#   scripts/device_checks.sh prepare        # here: pack the data each stage needs into
#                                           # .device-carry/<stage>/ (git-ignored)
#   scripts/device_checks.sh models OUT     # there: gpu tests, population and synthesis
#                                           # benchmarks (carry .device-carry/models)
#   scripts/device_checks.sh training OUT   # there: the students' training step under
#                                           # every kernel choice, distillation throughput
#                                           # (1/8/32/219 students) and the end-to-end
#                                           # make-compact run, with and without
#                                           # augmentation (carry .device-carry/training)
#
# Two stages because the data copy does not travel in one piece (a 64 MiB limit): `models`
# needs all 219 compact models, `training` every image zip. Each step has its own time limit
# and its own log under OUT, so one failing step does not lose the others.
# DEMO_BUDGET_S (default 180): the seconds the two end-to-end runs may take together; their
# number of passes is chosen from the throughput measured just before (and reported); 0
# skips them.
set -u
stage=${1:?usage: device_checks.sh prepare|models|training [OUT]}
repo=$(cd "$(dirname "$0")/.." && pwd)
carry=$repo/.device-carry
data=${V4COMPACT_DATA:-$repo/../shared/v4data}

if [ "$stage" = prepare ]; then
    rm -rf "$carry" && mkdir -p "$carry/models" "$carry/training"
    common="README.md sessions.csv release_manifest.tsv data_ensemble_model
        data_compact_models/nums_filters data_shared_compact_models/from_ensemble_model/shared_compact_model_200filters.keras"
    test_responses=""
    for s in 190923 201025 210224 210225 210325; do
        for kind in responses_repeat_averaged responses_raw; do
            f=data_V4_responses/$kind/responses_$s.npy
            [ -f "$data/$f" ] && test_responses="$test_responses $f"
        done
    done
    # models: every compact model, the images of 190923 / 201025 / 210224
    (cd "$data" && tar czf "$carry/models/v4data.tgz" $common $test_responses \
        data_compact_models/models_keras \
        data_V4_responses/images/images_190923.zip data_V4_responses/images/images_201025.zip \
        data_V4_responses/images/images_210224.zip)
    # training: every image zip, the released models of the demo's neurons
    demo=""
    for k in 0 10 20 30 40 50 60 70; do
        demo="$demo data_compact_models/models_keras/compact_model_201025_neuron$k.keras"
    done
    (cd "$data" && tar cf "$carry/training/v4data.tar" $common $test_responses $demo \
        data_V4_responses/images)
    du -sh "$carry"/*/*
    exit 0
fi

out=${2:?give the output folder}
mkdir -p "$out"
export V4COMPACT_DATA=/tmp/v4data PYTHONPATH=$repo/src PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export V4COMPACT_TUNING=/tmp/v4compact-tuning.json
py=${PYTHON:-python3}
mkdir -p "$V4COMPACT_DATA"
tar xf "$carry/$stage"/v4data.t* -C "$V4COMPACT_DATA" || exit 1
cd "$repo" || exit 1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
  nproc; } 2>&1 | tee "$out/machine.txt"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to OUT/NAME.log
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start))s"
    tail -n 40 "$out/$name.log" | grep -v '%|' || true
}

# QUICK=1 DEVICE=cpu: a dry run of this script on a CPU with tiny sizes (checks the script
# and the data it packs, not CUDA)
dev=${DEVICE:-cuda}
if [ -n "${QUICK:-}" ]; then
    images=24 students="1 2" wide=4 neurons=6 steps=3 sample=2 per_shard=40 pop_images=8 fused=1
    holdout=100
else
    images=512 students="1 8 32" wide=219 neurons=219 steps=100 sample=10 per_shard=0
    pop_images=300 holdout=1000 fused=2
fi
if [ "$stage" = models ]; then
    # only the files with gpu tests: the web tests need packages this machine lacks
    step gpu_tests 150 $py -m pytest -m gpu tests/models/test_cuda.py \
        tests/models/test_predict.py -q -p no:cacheprovider -ra
    # the CUDA rows only: the CPU rows of a 16-core host are slow to measure (first-use
    # tuning, 300 images) and are not what this machine is lent for
    step bench_models 70 $py benchmarks/bench_models.py --num-images $pop_images \
        --keras-python "" --devices "$dev" --json "$out/bench_models.json"
    step bench_synthesis 90 $py benchmarks/bench_synthesis.py --device "$dev" \
        --neurons $neurons --steps $steps --single-sample $sample --fused-steps $fused
elif [ "$stage" = training ]; then
    # one training step of the 219-student stack under every kernel choice, fp32 / bf16,
    # cuDNN search off / on, the top kernels, the 12M-image projection and its floors
    step bench_student_step 150 $py benchmarks/bench_student_step.py --device "$dev" \
        --students $wide --batch-size 8 --steps 2 --profile --json "$out/bench_student_step.json"
    step bench_distill 90 $py benchmarks/bench_distill.py --device "$dev" --students $students \
        --images $images --batch-size 32 --workers 8 --json "$out/bench_distill.json"
    # 219 students x 100 filters: layer 0 alone holds 21,900 maps of 112x112 per image, so a
    # smaller batch (8) keeps the saved activations within the GPU's memory
    # 219 students: the kernels bench_student_step found best there (tuning them per run
    # takes about a minute at this width)
    step bench_distill_219 60 $py benchmarks/bench_distill.py --device "$dev" \
        --students $wide --images $images --batch-size 8 --workers 8 --kernels matmul/contiguous
    mixed=--mixed-precision; [ "$dev" = cpu ] && mixed=""
    step bench_distill_bf16 60 $py benchmarks/bench_distill.py --device "$dev" \
        --students 8 $wide --images $images --batch-size 8 --workers 8 $mixed \
        --kernels matmul/contiguous
    # passes from the measured 8-student rate: two runs share the GPU; retraining costs
    # about a third of a distillation pass (pruned widths); 10 s per pass of loader, fidelity
    passes=$($py - "$out/bench_distill.json" "${DEMO_BUDGET_S:-180}" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
rate = next(r["student_images_per_s"] for r in rows if r["students"] == 8)
per_pass = 2 * 10_520 * 8 / rate + 10
print(max(1, min(20, int(float(sys.argv[2]) / (per_pass * 1.35)))))
EOF
    ) || passes=2
    [ -n "${QUICK:-}" ] && passes=1
    if [ "${DEMO_BUDGET_S:-180}" = 0 ]; then ls -la "$out"; exit 0; fi
    echo "== end-to-end runs: $passes passes each (distill), $(( (passes + 1) / 2 )) retraining"
    for variant in plain augment; do
        flag=""; [ $variant = augment ] && flag=--augment
        timeout $(( ${DEMO_BUDGET_S:-180} + 60 )) $py scripts/make_compact_demo.py \
            --out /tmp/demo_$variant --num-filters 100 --max-images-per-shard $per_shard \
            --passes "$passes" --retrain-passes $(( (passes + 1) / 2 )) --holdout $holdout \
            --eval-every 12 --workers 6 --device "$dev" $flag >"$out/demo_$variant.log" 2>&1 &
    done
    wait
    for variant in plain augment; do
        echo "== demo_$variant"; grep -v '%|' "$out/demo_$variant.log" | tail -n 20
    done
    tar czf "$out/demo_runs.tgz" -C /tmp --exclude=teacher_cache --exclude='*.pt' \
        demo_plain demo_augment 2>/dev/null
fi
ls -la "$out"
