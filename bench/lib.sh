# Shell helpers of the bench/ scripts (sourced).
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(page cache not dropped: not root)"; }
field() { grep "$1" "$2" | sed 's/.*: //'; }  # a line of /usr/bin/time -v's report
calc() { awk "BEGIN { print $1 }"; }
secs() {  # h:mm:ss or m:ss.ss -> seconds
  echo "$1" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }'
}
# Seconds to copy FROM to TO (a file or a directory) and sync, as a writer that fsyncs
# would take; the copy is removed afterwards.
timed_copy() {
  local t0 t1
  t0=$(date +%s.%N)
  cp -r "$1" "$2"
  sync
  t1=$(date +%s.%N)
  rm -rf "$2"
  calc "$t1 - $t0"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
