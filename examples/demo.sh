#!/bin/sh
# End-to-end demo: start a run, see it pause for approval, resume it, see it complete.
set -eu
cd "$(dirname "$0")/.."

field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "== cpf validate -f examples/release.yaml"
cpf validate -f examples/release.yaml | field '["status"]'

echo "== cpf run -f examples/release.yaml --input '{\"service\": \"billing\"}'"
set +e
started=$(cpf run -f examples/release.yaml --input '{"service": "billing"}')
code=$?
set -e
echo "$started"
[ "$code" -eq 40 ] || { echo "expected exit 40 (waiting), got $code" >&2; exit 1; }
run_id=$(printf '%s' "$started" | field '["run_id"]')

echo "== the run is paused; anyone can pick it up with:"
printf '%s' "$started" | field '["wait"]["resume"]["command"]'

echo "== cpf resume --run-id $run_id --event release_approval --input '{\"decision\": \"approve\"}'"
finished=$(cpf resume --run-id "$run_id" --event release_approval --input '{"decision": "approve"}')
echo "$finished"
[ "$(printf '%s' "$finished" | field '["status"]')" = completed ] || { echo "run did not complete" >&2; exit 1; }

echo "== run folder: $CHECKPOINTFLOW_BASE_DIR/runs/$run_id"
ls "$CHECKPOINTFLOW_BASE_DIR/runs/$run_id"
echo "demo finished: run $run_id paused for approval, resumed, and completed."
