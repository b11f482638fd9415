#!/usr/bin/env bash
# End-to-end `fakedet scan` images/s under OpenMP settings that might let decoding and the model
# share a small CPU better, each setting twice, alternating:
#
#   bash benchmarks/bench_threads.sh DIR [DIR ...]     (for example benchmark.py --dir's folders)
#
#   default   torch's own choice (one intra-op thread per core)
#   omp1      OMP_NUM_THREADS=1: the model on one core, the decoding threads on the rest
#   passive   OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep at once instead of spinning
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 DIR [DIR ...]" >&2; exit 2; }
FAKEDET="${FAKEDET:-fakedet}"
echo "| run | setting | folder | images | img/s |"
echo "|---|---|---|---|---|"
for rep in 1 2; do
    for setting in default omp1 passive; do
        case "$setting" in
            default) envs=() ;;
            omp1) envs=(OMP_NUM_THREADS=1) ;;
            passive) envs=(OMP_WAIT_POLICY=PASSIVE) ;;
        esac
        for dir in "$@"; do
            n=$(find "$dir" -maxdepth 1 -type f | wc -l)
            t0=$(date +%s.%N)
            env "${envs[@]}" "$FAKEDET" scan "$dir" -q > /dev/null 2>&1 || [ $? -eq 1 ]
            t1=$(date +%s.%N)
            python3 -c "print(f'| $rep | $setting | $(basename "$dir") | $n | {$n / ($t1 - $t0):.1f} |')"
        done
    done
done
