#!/bin/sh
# An executable algo: stdin upper-cased to stdout; exits 3 on "poison"; $1 $2 ... are echoed to stderr-free args.
data=$(cat)
case "$data" in *poison*) echo "poison is not food" >&2; exit 3;; esac
printf '%s' "$data" | tr 'a-z' 'A-Z'
