#!/usr/bin/env bash
# What `make bench` needs besides the test services: Debian's wrk (the HTTP load generator).
set -euo pipefail

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's wrk for the benchmarks..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  fi
  command -v wrk >/dev/null || { echo "Benchmarks need Debian's 'wrk' package: run 'apt-get install -y wrk' as root." >&2; exit 1; }
fi
