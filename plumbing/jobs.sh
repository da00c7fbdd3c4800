# The job scripts' (run_*.sh) way to train one arm, sourced by each: a job that was interrupted is continued by
# running its script again.
#
#   train SCRIPT OUT [OPTIONS...]
#
# OUT holds a complete run (final/): kept as it is. It holds a checkpoint: the run continues from it (--resume,
# which checks that the options, the model and the data are the run's own). It holds a run that stopped before its
# first checkpoint: that run starts again (--overwrite: nothing of it was saved but its first log line). Else: a
# new run.
train() {
    local script=$1 out=$2
    shift 2
    if [ -d "$out/final" ]; then
        echo "$out is complete: kept"
    elif compgen -G "$out/step_*/COMPLETE" >/dev/null; then
        echo "$out was interrupted: continuing it (--resume)"
        python "$script" "$@" --out "$out" --resume
    elif [ -e "$out/config.json" ]; then
        echo "$out stopped before its first checkpoint: starting it again (--overwrite)"
        python "$script" "$@" --out "$out" --overwrite
    else
        python "$script" "$@" --out "$out"
    fi
}
