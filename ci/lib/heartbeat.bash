# shellcheck shell=bash
# heartbeat LABEL LOG CMD...: run CMD; while it runs, print "bootstrap: LABEL: 1m10s — <last
# line of LOG>" every $RECONVERGE_HEARTBEAT_SECONDS (default 10) seconds. Returns CMD's status.
#
# Why: apt-get and pip print nothing for minutes on a cold machine (their output goes to a log
# so a warm run stays quiet), and a CI log that is silent that long looks hung — some CI
# systems kill it. The Go builds have their own heartbeat (harness/build/progress.py, same
# 10 s on a pipe, promise <= 15 s); this is the one for the shell steps before the venv exists.
#
# The ticker is a background subshell: stopped when CMD ends (also when it fails), by the
# EXIT trap if the script dies first, and it stops by itself once the script is gone.

_heartbeat_pid=""

_heartbeat_stop() {
  if [ -n "$_heartbeat_pid" ]; then
    kill "$_heartbeat_pid" 2>/dev/null || true
    wait "$_heartbeat_pid" 2>/dev/null || true
    _heartbeat_pid=""
  fi
}

_heartbeat_fmt() {  # 75 -> 1m15s, 9 -> 9s (the format of harness/build/progress.py)
  if (($1 >= 60)); then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi
}

heartbeat() {
  local label=$1 log=$2
  shift 2
  local interval=${RECONVERGE_HEARTBEAT_SECONDS:-10} start owner=$$ rc=0
  start=$(date +%s)
  (
    sleeper=""
    trap '[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; exit 0' TERM
    while kill -0 "$owner" 2>/dev/null; do
      sleep "$interval" &
      sleeper=$!
      wait "$sleeper" || true
      kill -0 "$owner" 2>/dev/null || break
      last=""
      [ -s "$log" ] && last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-90)
      printf 'bootstrap: %s: %s%s\n' "$label" "$(_heartbeat_fmt $(($(date +%s) - start)))" \
        "${last:+ — $last}"
    done
  ) &
  _heartbeat_pid=$!
  trap _heartbeat_stop EXIT
  "$@" || rc=$?
  _heartbeat_stop
  return "$rc"
}
