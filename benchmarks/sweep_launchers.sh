#!/usr/bin/env bash
# A 4-job sweep run sequentially (Hydra's basic launcher) and with the joblib launcher (n_jobs=2),
# alternately, ROUNDS times each; prints the wall time of each and the load average before it.
#   bash benchmarks/sweep_launchers.sh [ROUNDS] [EPOCHS]   (in an empty folder: it writes outputs/)
# Each joblib worker imports torch once (seconds), so the jobs must be long enough to pay for it.
set -euo pipefail
ROUNDS=${1:-2}
EPOCHS=${2:-60}
SWEEP=(optim=sgd,adam optim.lr=0.01,0.1 "trainer.epochs=$EPOCHS" trainer.threads=1)
for round in $(seq "$ROUNDS"); do
  for launcher in basic joblib; do
    extra=()
    [[ $launcher == joblib ]] && extra=(hydra/launcher=joblib hydra.launcher.n_jobs=2)
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    nnexp -m "${SWEEP[@]}" "${extra[@]}" > /dev/null 2>&1
    end=$(date +%s.%N)
    printf '%s round %d load %s wall %.1f s\n' "$launcher" "$round" "$load" "$(echo "$end - $start" | bc)"
  done
done
