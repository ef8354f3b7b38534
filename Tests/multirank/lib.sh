# Shared by the multi-rank test scripts (source it): the launch helpers, a scratch folder removed on
# exit, PASS/FAIL counting and a small token corpus from the tokenizer fixture's play.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/launch/common.sh"
set +e
SUBSPACE="${SUBSPACE_BIN:-$SUBSPACE}"
CHECK="python3 $ROOT/Tests/multirank/check.py"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
passed=0; failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
expect() { local name="$1"; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# Closing line for the runner summary; the exit status says whether anything failed.
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }

# A byte-level token corpus of one play at $WORK/corpus.
FIX="$ROOT/../shared/fixtures"
make_corpus() {
    mkdir -p "$WORK/text" && cp "$FIX/bpe-tokenizer/long_text.txt" "$WORK/text/play.txt"
    "$SUBSPACE" data corpus --input "$WORK/text" --output "$WORK/corpus" --tokenizer bytes --validation-fraction 0.1 >/dev/null \
        || fail "corpus"
}
