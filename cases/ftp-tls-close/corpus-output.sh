#!/bin/sh
# ci/corpus prints a table: one line per variant, and nothing between them.
# Runs one corpus program with stderr joined to stdout and fails unless it
# printed exactly its own table line ("CASE VARIANT VERDICT ...").
# usage: corpus-output.sh PROGRAM CASE VARIANT
program=$1 case=$2 variant=$3
out=$(timeout 120 "$program" 2>&1) || { printf '%s\n' "$out"; echo "the corpus program failed" >&2; exit 1; }
printf '%s\n' "$out"
lines=$(printf '%s\n' "$out" | wc -l)
if [ "$lines" -ne 1 ]; then
  echo "expected 1 line (the table's), got $lines: a stray line on stdout or stderr" >&2
  exit 1
fi
case $out in
  "$case "*" $variant "*) ;;
  *) echo "the line is not $case $variant's" >&2; exit 1 ;;
esac
