#!/usr/bin/env bash
# Real programs the end-to-end tests use: Prometheus, Alertmanager (and promtool/amtool), and a
# PostgreSQL server for the PostgreSQL outbox and Prefect, OpenSSH's server for the SSH tests, and
# Chromium for the browser test of the Prefect UI.
# Installed from Debian's packages when we are root; otherwise the tests that need them skip with a
# reason (and fail under CI=true, so CI can never pass without them).
set -u
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the Prefect UI test (driven by Playwright)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} (Debian packages) for the end-to-end tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages start system services; the tests run their own instances on free ports.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter postgresql ssh; do
    (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || true
    (command -v service >/dev/null && service "$svc" stop >/dev/null 2>&1) || true
  done
  exit 0
fi
echo "note: ${need[*]} not installed and not root: the Prometheus/Alertmanager tests will skip" >&2
