#!/bin/sh
# The backtests of docs/results/timeseries.md: every development series, seqflow with WaveNet
# conditioners (plus the classical baselines) and with LSTM conditioners.
#   sh recipes/timeseries/development.sh [OUT] [SERIES...]      (OUT default runs/timeseries)
# Run from the repository root after `python recipes/timeseries/prepare.py`. One thread per
# process; a rerun with the same OUT reuses finished trainings.
set -e
OUT=${1:-runs/timeseries}
shift 2>/dev/null || true
SERIES=${*:-"sunspots elnino macrodata co2 electricity"}
DATA=data/timeseries
CONFIGS=recipes/timeseries/configs
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

forecast() {  # name csv-args... ; runs wavenet (with baselines) then lstm
    name=$1; shift
    python recipes/timeseries/forecast.py "$@" --config $CONFIGS/wavenet.yaml \
        --out "$OUT/$name/wavenet" --baselines seasonal_naive ets arima deepar $BASELINE_ARGS
    python recipes/timeseries/forecast.py "$@" --config $CONFIGS/lstm.yaml \
        --out "$OUT/$name/lstm" --baselines
}

for s in $SERIES; do
    BASELINE_ARGS=""
    case $s in
    sunspots) forecast sunspots --csv $DATA/sunspots.csv --time-column date \
        --target sunactivity --freq YS --context 60 --horizon 11 --origins 10 --num-samples 200 ;;
    elnino) forecast elnino --csv $DATA/elnino.csv --time-column date --target sst \
        --freq MS --context 60 --horizon 12 --origins 12 --num-samples 200 ;;
    macrodata) forecast macrodata --csv $DATA/macrodata.csv --time-column date \
        --target realgdp,realcons,realinv,realgovt,realdpi,cpi,m1,tbilrate,unemp,pop,infl,realint \
        --freq QS --context 24 --horizon 4 --origins 10 --num-samples 200 ;;
    co2) forecast co2 --csv $DATA/co2.csv --time-column date --target co2 --freq W-SAT \
        --context 104 --horizon 52 --origins 10 --num-samples 200 ;;
    electricity) BASELINE_ARGS="--fit-window 2016"
        # 33,000 training hours: evaluated every 100 steps, no early stopping
        forecast electricity --set train.eval_every=100 --set train.patience=0 --csv $DATA/electricity.csv --time-column date \
        --target Global_active_power,Global_reactive_power,Voltage,Global_intensity,Sub_metering_1,Sub_metering_2,Sub_metering_3 \
        --freq h --context 168 --horizon 24 --origins 14 --num-samples 200 ;;
    *) echo "development.sh: unknown series $s" >&2; exit 2 ;;
    esac
done
