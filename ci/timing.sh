# timed LABEL COMMAND...: runs COMMAND and, when CLOSECHECK_STAGE_TIMES names a
# file, appends "LABEL<TAB>SECONDS" to it (ci/test prints where its time went).
# Returns COMMAND's status.
timed() {
  local label=$1 start=$SECONDS status=0
  shift
  "$@" || status=$?
  if [ -n "${CLOSECHECK_STAGE_TIMES:-}" ]; then
    printf '%s\t%s\n' "$label" $((SECONDS - start)) >>"$CLOSECHECK_STAGE_TIMES"
  fi
  return $status
}

# print_stage_times: the stages recorded so far, and their sum.
print_stage_times() {
  [ -n "${CLOSECHECK_STAGE_TIMES:-}" ] && [ -s "$CLOSECHECK_STAGE_TIMES" ] || return 0
  awk -F'\t' '{ printf "  %-24s %6d s  (%d:%02d)\n", $1, $2, $2 / 60, $2 % 60; total += $2 }
              END { printf "  %-24s %6d s  (%d:%02d)\n", "total", total, total / 60, total % 60 }' \
    "$CLOSECHECK_STAGE_TIMES"
}
