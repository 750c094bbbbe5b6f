#!/usr/bin/env bash
# A private Docker daemon for building and testing the images on a machine without one (CI):
# its own data root, exec root, socket and containerd, no bridge and no iptables rules, so it
# shares nothing with another daemon on the machine and containers reach only loopback or the
# network namespaces a test wires itself.
#
# Usage: images/dockerd.sh start DIR   starts dockerd with its state in DIR (created), waits
#                                      until it answers, prints the DOCKER_HOST to export
#        images/dockerd.sh stop DIR    stops that daemon (SIGTERM, then waits for it to exit)
#
# Needs root and Debian's docker.io package (dockerd, containerd, runc).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

[[ $# -eq 2 ]] || { usage >&2; exit 2; }
action="$1"
dir="$2"

case "$action" in
  start)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    host="unix://${dir}/docker.sock"
    # The containerd namespaces keep this daemon's containers apart even when it finds a
    # system containerd to share.
    dockerd \
      --data-root "${dir}/data" \
      --exec-root "${dir}/exec" \
      --pidfile "${dir}/dockerd.pid" \
      --host "$host" \
      --containerd-namespace tandem \
      --containerd-plugins-namespace tandem-plugins \
      --bridge=none \
      --iptables=false \
      --ip6tables=false \
      >"${dir}/dockerd.log" 2>&1 &
    # Starting containerd and the daemon takes a few seconds; a minute is ample on a busy
    # 2-core machine.
    for _ in $(seq 1 600); do
      if DOCKER_HOST="$host" docker version >/dev/null 2>&1; then
        echo "$host"
        exit 0
      fi
      if ! kill -0 "$!" 2>/dev/null; then
        echo "dockerd.sh: dockerd exited; its log:" >&2
        cat "${dir}/dockerd.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    echo "dockerd.sh: dockerd did not answer within 60 s; its log:" >&2
    cat "${dir}/dockerd.log" >&2
    exit 1
    ;;
  stop)
    pidfile="${dir}/dockerd.pid"
    [[ -f "$pidfile" ]] || exit 0
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || exit 0
    # dockerd stops its containers (10 s each at most) and its containerd before it exits.
    for _ in $(seq 1 600); do
      kill -0 "$pid" 2>/dev/null || exit 0
      sleep 0.1
    done
    echo "dockerd.sh: dockerd ${pid} still running after 60 s" >&2
    exit 1
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
