#!/usr/bin/env bash
# The whole loop on the stack of the active configuration ($FRAUDCTL_CONFIG, else ./fraudctl.yaml), with the
# fraudctl commands an operator would type, in order:
#   1. bring the stack up (unless it already is)     6. retrain on Airflow from the lake, over its REST API
#   2. simulate DAYS days of transactions              and wait (its gate promotes the result if better)
#   3. train a first model, make it @champion        7. replay the last days, paced: scored by the new
#   4. start the streaming scorer                        champion if step 6 promoted one
#   5. replay all but the last days, paced, with     8. wait until the scorer has read everything
#      labels delayed 7 days (event time)            9. summary: scores, alerts, precision and recall,
#                                                        latency, model versions, the UIs' URLs
# The first model trains on days 22-28 and is tested on days 36-42 (7 days of label delay between); its
# alert threshold comes from a model trained on days 8-14 and scored on days 22-28 (earlier days are too
# young for the 30-day feature windows). The summary measures the alerts from day 43 on: data the model
# never saw.
# `stack/native/quickstart.sh` installs, then runs this. Settings (environment, defaults in brackets):
#   DAYS [60] CUSTOMERS [5000] TERMINALS [10000] START_DATE [2018-04-01] SEED [0]
#   LAST_DAYS [10]: days replayed after the retrain   RATE [5000]: replay pace, transactions/s
#   ALERT_BUDGET [the config's model.alert_budget_per_day]: alerts a day the first and the retrained model allow
#   DATA [data/quickstart.csv]   SUMMARY_JSON: also write the summary as JSON to this file
# The stack stays up afterwards; `fraudctl down` stops it. Exits with the first failing command's code.
set -euo pipefail
cd "$(dirname "$0")/.."
F=${FRAUDCTL:-.venv/bin/fraudctl}
PY=${PYTHON:-.venv/bin/python}
DAYS=${DAYS:-60} CUSTOMERS=${CUSTOMERS:-5000} TERMINALS=${TERMINALS:-10000} START_DATE=${START_DATE:-2018-04-01}
SEED=${SEED:-0} LAST_DAYS=${LAST_DAYS:-10} RATE=${RATE:-5000} DATA=${DATA:-data/quickstart.csv}
# Both models' thresholds from the same budget: the retrain runs on Airflow, under the stack's config.
budget_train=() budget_retrain=()
if [ -n "${ALERT_BUDGET:-}" ]; then
  budget_train=(--alert-budget "$ALERT_BUDGET") budget_retrain=(--conf "alert_budget_per_day=$ALERT_BUDGET")
fi
TRAIN_WINDOW_DAYS=42

step=0 started=$(date +%s)
say() { step=$((step + 1)); printf '\n\033[1m==> [%s/9] %s\033[0m (%ss)\n' "$step" "$*" $(( $(date +%s) - started )); }
day() { "$PY" -c 'import datetime as d, sys; print(d.date.fromisoformat(sys.argv[1]) + d.timedelta(days=int(sys.argv[2])))' "$@"; }

say "the stack (fraudctl up, unless it is up already)"
if $F status >/dev/null 2>&1; then echo "already up"; else $F up; fi

say "simulate $DAYS days from $START_DATE ($CUSTOMERS customers, $TERMINALS terminals)"
$F generate --days "$DAYS" --customers "$CUSTOMERS" --terminals "$TERMINALS" --start-date "$START_DATE" \
  --seed "$SEED" --out "$DATA"

say "train a first model (days 8-$TRAIN_WINDOW_DAYS); @champion if it passes the promotion gate"
$F train --data "$DATA" --train-start "$(day "$START_DATE" 21)" --validation-days 7 --train-days 7 --delay-days 7 \
  --test-days 7 "${budget_train[@]}" --promote-if-better
$F models list

say "start the streaming scorer"
$F scorer start

retrain_cutoff=$(day "$START_DATE" $((DAYS - LAST_DAYS)))
# The generator writes rows in time order: the first part is every row before the cutoff day.
first_rows=$(awk -F, -v cutoff="$retrain_cutoff" 'NR > 1 && $2 < cutoff { n++ } END { print n + 0 }' "$DATA")
say "replay days 1-$((DAYS - LAST_DAYS)) ($first_rows transactions) at $RATE/s, labels delayed"
$F replay "$DATA" --limit "$first_rows" --rate "$RATE"

say "retrain on Airflow from the lake the scorer wrote (cutoff $retrain_cutoff) and wait"
$F scorer wait --timeout 600  # the lake holds what was scored: let it catch up first
$F retrain --wait --conf "cutoff=$retrain_cutoff" --conf "window_days=$((DAYS - LAST_DAYS))" "${budget_retrain[@]}"
$F models list

say "replay the last $LAST_DAYS days at $RATE/s"
$F scorer wait --champion --timeout 120  # the scorer has taken the champion the retrain left: it scores what follows
$F replay "$DATA" --skip "$first_rows" --rate "$RATE"

say "wait until the scorer has read everything"
$F scorer wait --timeout 600

say "summary (alerts measured from day $((TRAIN_WINDOW_DAYS + 1)) on)"
since=$(day "$START_DATE" "$TRAIN_WINDOW_DAYS")
if [ -n "${SUMMARY_JSON:-}" ]; then
  $F scores summary --since "$since" -o json >"$SUMMARY_JSON"
fi
$F scores summary --since "$since"
echo
echo "loop done in $(( $(date +%s) - started ))s. The stack is still up: fraudctl status --watch | fraudctl down"
