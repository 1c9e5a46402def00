# Sourced by the belt-pipeline tests (90-pipeline, 91-spool, 92-saturation) after they set ROOT:
# sets PY and BEAND_BIN and skips (exit 77), naming what is missing, without the built binaries,
# the test venv with the Python modules given as arguments, or journalctl.
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
export BEAND_BIN="${BEAND_BIN:-$ROOT/.build/debug}"
[ -x "$BEAND_BIN/beand" ] && [ -x "$BEAND_BIN/beanctl" ] || { echo "SKIP: beand/beanctl not built in $BEAND_BIN"; exit 77; }
[ -x "$PY" ] || { echo "SKIP: no Python venv at $PY (run Deploy/install-deps.sh)"; exit 77; }
"$PY" -c "import $(IFS=,; echo "$*")" 2>/dev/null || { echo "SKIP: $(IFS=/; echo "$*") missing in $PY"; exit 77; }
command -v journalctl >/dev/null || { echo "SKIP: journalctl not installed"; exit 77; }
