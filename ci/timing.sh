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

# print_stage_times: the stages recorded so far, and their sum; then the
# builds that ran behind them (ci/build-behind), which the sum leaves out:
# their time is inside the stages they ran beside.
print_stage_times() {
  [ -n "${CLOSECHECK_STAGE_TIMES:-}" ] && [ -s "$CLOSECHECK_STAGE_TIMES" ] || return 0
  awk -F'\t' 'function line(label, s) { printf "  %-28s %6d s  (%d:%02d)\n", label, s, s / 60, s % 60 }
              $3 != "behind" { line($1, $2); total += $2 }
              $3 == "behind" { behind[++n] = $1; seconds[n] = $2 }
              END { line("total", total)
                    if (n) print "  behind the stages above, at the idle CPU priority (not in the total):"
                    for (i = 1; i <= n; i++) line(behind[i], seconds[i]) }' \
    "$CLOSECHECK_STAGE_TIMES"
}
