#!/usr/bin/env bash
# The paper's study on the data this machine can reach: NETtalk (the authors' file), spoken digits (espeak-ng,
# the offline stand-in for TIDigits) and MNIST, then the summary under docs/results/ (collect_results.py).
#
#   benchmarks/paper_study.sh NETTALK_MAT MNIST_RAW [WORK]
#
# NETTALK_MAT: the authors' nettalk_small.mat; MNIST_RAW: a folder with MNIST/raw/*-ubyte (torchvision layout);
# WORK (default study_runs): spike files and every training run. Finished runs are reused when it is run again.
# On the 2-core CPU machine of docs/results/README.md this takes about two hours, and the authors' protocol
# (80-epoch runs) about ten more.
set -euo pipefail
MAT=${1:?the authors\' nettalk_small.mat}
RAW=${2:?a folder holding MNIST/raw}
WORK=${3:-study_runs}
MDN=${MDN:-mdn}
mkdir -p "$WORK"/data "$WORK"/nettalk_variants "$WORK"/spoken "$WORK"/mnist
D="$WORK/data"
[ -f "$D/nettalk.h5" ] || $MDN prep nettalk --mat "$MAT" --out "$D/nettalk.h5"
[ -f "$D/spoken.h5" ] || $MDN prep spoken_digits --out "$D/spoken.h5"
[ -f "$D/mnist.h5" ] || $MDN prep mnist --root "$RAW" --out "$D/mnist.h5"
Q="--threads 1 --no-progress"

# NETtalk, Table 3's row: the paper's five neurons x 5 seeds, Table 1 settings; scored both ways
$MDN evaluate --data "$D/nettalk.h5" --seeds 5 --out "$WORK/nettalk" --score cosine --jobs 2 --no-progress
python "$(dirname "$0")/nettalk_subset.py" "$D/nettalk.h5" --evaluation "$WORK/nettalk" | tee "$WORK/nettalk/subset.txt"
# which of the authors' settings moves 2-FS (seed 0)
T="$MDN train --data $D/nettalk.h5 --recipe nettalk --neuron 2-FS --resume $Q"
$T --out "$WORK/nettalk_variants/nodecay" --lr-decay 1.0 & $T --out "$WORK/nettalk_variants/undetached" --undetached-reset & wait
$T --out "$WORK/nettalk_variants/authors80" --epochs 80 --lr-step 50 --lr-decay 0.1 &
$T --out "$WORK/nettalk_variants/undetached_nodecay" --undetached-reset --lr-decay 1.0 & wait
python "$(dirname "$0")/nettalk_subset.py" "$D/nettalk.h5" "$WORK/nettalk/runs/nettalk/2-FS/seed0" \
    "$WORK"/nettalk_variants/{nodecay,undetached,undetached_nodecay,authors80} | tee "$WORK/nettalk_variants/subset.txt"

# spoken digits: temporal meta neurons (paper protocol with spikes and with analog input; the authors' protocol),
# then the paper's five and the generated neurons, 5 seeds, with spikes and with analog input
S="$D/spoken.h5"
$MDN discover --data "$S" --out "$WORK/spoken/sdspk.json" --seeds 3 $Q &
$MDN discover --data "$S" --out "$WORK/spoken/sdana.json" --seeds 3 --analog $Q & wait
$MDN discover --data "$S" --out "$WORK/spoken/sdauth.json" --seeds 1 --analog --protocol authors $Q &
$MDN discover --data "$D/mnist.h5" --out "$WORK/mnist/spatial_paper.json" --seeds 1 --epochs 5 $Q & wait
# the filters on the authors' published candidates (Table 2's origin)
python "$(dirname "$0")/published_candidates.py" --data "$D/mnist.h5" --kind spatial --out "$WORK/published"
python "$(dirname "$0")/published_candidates.py" --data "$S" --kind temporal --out "$WORK/published" --accuracy-epochs 5 --analog
python "$(dirname "$0")/published_candidates.py" --data "$S" --kind temporal --out "$WORK/published" --accuracy-epochs 0
LIBS="$WORK/spoken/sdspk.json $WORK/spoken/sdana.json $WORK/spoken/sdauth.json"
N="2-FS 2-RS 2-SDS 2-WDS 1st-order 1st-order-0.2 sdspk-1 sdana-1 sdauth-1"
$MDN evaluate --data "$S" --library $LIBS --neurons $N --seeds 5 --out "$WORK/spoken/eval_spikes" --jobs 2 --no-progress
$MDN evaluate --data "$S" --library $LIBS --neurons $N --seeds 5 --analog --out "$WORK/spoken/eval_analog" --jobs 2 --no-progress
# which difference from the authors' TIDIGITS setting matters: their features (linear, per band), their
# random split, their T
[ -f "$D/spoken_l1.h5" ] || $MDN prep spoken_digits --levels l1 --out "$D/spoken_l1.h5"
[ -f "$D/spoken_l1_rand.h5" ] || $MDN prep spoken_digits --levels l1 --split random --test-fraction 0.3 --out "$D/spoken_l1_rand.h5"
[ -f "$D/spoken_l1_rand_t90.h5" ] || $MDN prep spoken_digits --levels l1 --split random --test-fraction 0.3 \
    --time-steps 90 --out "$D/spoken_l1_rand_t90.h5"
$MDN evaluate --data "$D/spoken_l1.h5" --seeds 5 --analog --out "$WORK/spoken/eval_l1_analog" --jobs 2 --no-progress
$MDN evaluate --data "$D/spoken_l1_rand.h5" --seeds 5 --analog --out "$WORK/spoken/eval_l1rand_analog" --jobs 2 --no-progress
$MDN evaluate --data "$D/spoken_l1_rand_t90.h5" --seeds 3 --analog --out "$WORK/spoken/eval_l1rand_t90_analog" --jobs 2 --no-progress

# MNIST: the authors' discovery protocol, the 1st-order neuron with their decay, 2-FS and 1st-order x 5 seeds
$MDN discover --data "$D/mnist.h5" --out "$WORK/mnist/spatial_authors.json" --seeds 1 --epochs 5 --protocol authors $Q &
$MDN train --data "$D/mnist.h5" --recipe mnist --neuron 1st-order-0.2 --out "$WORK/mnist/first_order_0.2" --resume $Q & wait
$MDN evaluate --data "$D/mnist.h5" --neurons 2-FS 1st-order --seeds 5 --out "$WORK/mnist/eval" --jobs 2 --no-progress
# which half of the authors' protocol moves theta: theta per batch row, or the undetached reset (3 epochs)
$MDN discover --data "$D/mnist.h5" --out "$WORK/mnist/spatial_rows.json" --epochs 3 --theta-per-row --space raw \
    --quantile 0.5 --accuracy-epochs 0 $Q &
$MDN discover --data "$D/mnist.h5" --out "$WORK/mnist/spatial_undetached.json" --epochs 3 --undetached-reset \
    --accuracy-epochs 0 $Q & wait
# NETtalk with the authors' schedule, 5 seeds
$MDN evaluate --data "$D/nettalk.h5" --seeds 5 --epochs 80 --lr-step 50 --lr-decay 0.1 --score cosine \
    --out "$WORK/nettalk80" --jobs 2 --no-progress
python "$(dirname "$0")/nettalk_subset.py" "$D/nettalk.h5" --evaluation "$WORK/nettalk80" | tee "$WORK/nettalk80/subset.txt"

# the authors' protocol as a whole (80 epochs each: from half an hour to 1.5 h per MNIST run and 5-40 min per NETtalk run on these
# 2 cores, two at a time; resumable), per-epoch theta of the MNIST discoveries, Fig. 8 from the paper's table
$MDN evaluate --data "$D/mnist.h5" --protocol authors --neurons 2-FS 1st-order-0.2 --seeds 3 --out "$WORK/mnist_authors" \
    --jobs 2 --no-progress
$MDN evaluate --data "$D/nettalk.h5" --protocol authors --seeds 5 --score cosine_first_of_5 --out "$WORK/nettalk_authors" \
    --jobs 2 --no-progress
B="$(dirname "$0")"
python "$B/theta_per_epoch.py" "paper's text=$WORK/mnist/spatial_paper_runs/seed0" \
    "authors' code=$WORK/mnist/spatial_authors_runs/seed0" "theta per batch row only=$WORK/mnist/spatial_rows_runs/seed0" \
    "undetached reset only=$WORK/mnist/spatial_undetached_runs/seed0" --out docs/results/discovery/theta_per_epoch.json
python "$B/paper_fig8.py"

# one Table 3 and Fig. 8 over the tasks with all five paper neurons: NETtalk, the demo's digits and
# digits_rows, spoken digits with the authors' analog input
$MDN demo --out "$WORK/demo"
$MDN combine "$WORK/nettalk" "$WORK/demo/full/evaluation" "spoken_digits (analog)=$WORK/spoken/eval_analog" \
    --neurons 2-FS 2-RS 2-SDS 2-WDS 1st-order --out "$WORK/combined"
python "$(dirname "$0")/collect_results.py" "$WORK" --out docs/results
