#!/usr/bin/env bash
# Prove the install paths a user takes, outside the developer venv (issue 11). Called by
# scripts/test.sh, so CI (.ci/run) runs it on every clean clone:
#   1. `python -m build` builds the sdist and, from it, the wheel, printing no warnings;
#   2. the wheel goes, with no extras, into a fresh venv outside the source tree;
#   3. every module imports with the base dependencies alone (only the PostgreSQL store needs
#      the extra), and the installed metadata is what an index page shows;
#   4. from a temp dir outside the tree: `watchdog --version`, `watchdog check` on the shipped
#      example config (with dummy secret files), a postgresql:// store without the extra,
#      `watchdog replay` of the shipped example, a short `watchdog demo` scenario;
#   5. the filesystem-events library `watchdog` installed over it: the command says so.
# Any failure stops here with what failed. Uses pip's cache; reaches nothing but PyPI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
DEV_PY="$ROOT/.venv/bin/python"
WORK=$(mktemp -d /tmp/watchdog-install-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
VENV="$WORK/venv"
RUN="$WORK/run"
mkdir -p "$RUN"
# the filesystem-events library, pinned so the clash check is reproducible
FILESYSTEM_EVENTS="watchdog==6.0.0"

# elapsed tenths of a second, from bash's own clock (no bc on a bare machine)
now_ds() { local t=${EPOCHREALTIME/./}; echo $((t / 100000)); }
started=$(now_ds)
step_started=$started
since() { local d=$(($(now_ds) - $1)); printf '%d.%d s' $((d / 10)) $((d % 10)); }
fail() {
  echo "install-check: FAILED: $*" >&2
  exit 1
}
step() {
  printf -- '-- %-66s %8s\n' "$1" "$(since "$step_started")"
  step_started=$(now_ds)
}
# pip prints this for a find-links location on these machines on every install (TOOLING.md)
quiet_pip() { grep -v "^WARNING: Location '.*' is ignored" || true; }

# 1. build (PYTHONDONTWRITEBYTECODE, when the environment sets it, makes setuptools warn
#    "byte-compiling is disabled": a property of the shell, not of the package)
if ! env -u PYTHONDONTWRITEBYTECODE "$DEV_PY" -m build --outdir "$WORK/dist" "$ROOT" \
  >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log" >&2
  fail "python -m build"
fi
warnings=$(grep -i "warn" "$WORK/build.log" | grep -v "^WARNING: Location '.*' is ignored" || true)
if [ -n "$warnings" ]; then
  echo "$warnings" >&2
  fail "python -m build printed warnings (full log above the failure: $WORK/build.log)"
fi
wheels=("$WORK"/dist/*.whl)
sdists=("$WORK"/dist/*.tar.gz)
[ ${#wheels[@]} -eq 1 ] && [ -f "${wheels[0]}" ] || fail "expected one wheel in $WORK/dist"
[ ${#sdists[@]} -eq 1 ] && [ -f "${sdists[0]}" ] || fail "expected one sdist in $WORK/dist"
step "build sdist + wheel, no warnings ($(basename "${wheels[0]}"))"

# 2. a fresh venv, outside the tree, the wheel without extras. The dev venv's pip installs
#    into it (--python): the venv's own bundled pip is older, keeps a cache in another layout
#    and would download every dependency again (19 s instead of 8 here)
"$PY" -m venv --without-pip "$VENV"
pip_into_venv() { "$DEV_PY" -m pip --python "$VENV/bin/python" "$@" 2>&1 | quiet_pip; }
pip_into_venv install -q --disable-pip-version-check "${wheels[0]}"
[ -x "$VENV/bin/watchdog" ] || fail "the wheel installed no watchdog command"
step "fresh venv + pip install the wheel (no extras)"

# 3. imports and metadata, isolated from the source tree (-I: no cwd, no PYTHONPATH)
cd "$RUN"
"$VENV/bin/python" -I - "$VENV" <<'EOF' || fail "imports or metadata of the installed wheel"
import importlib
import importlib.metadata as md
import importlib.util
import pkgutil
import sys

venv = sys.argv[1]
assert importlib.util.find_spec("asyncpg") is None, "asyncpg is installed: this proves nothing"
import watchdog

assert watchdog.__file__.startswith(venv), f"imported {watchdog.__file__}, not the venv's"
skipped = []
for module in pkgutil.walk_packages(watchdog.__path__, "watchdog."):
    if module.name.endswith(".__main__"):
        continue  # importing it runs the command line
    try:
        importlib.import_module(module.name)
    except ModuleNotFoundError as exc:
        # only the PostgreSQL store may need the postgres extra
        assert module.name == "watchdog.store.postgres" and exc.name == "asyncpg", (
            f"{module.name} needs {exc.name}, which the base install lacks"
        )
        skipped.append(module.name)
assert skipped == ["watchdog.store.postgres"], skipped
import rollback_watchdog_launcher  # noqa: F401

meta = md.metadata("rollback-watchdog")
assert meta["License-Expression"] == "MIT", meta["License-Expression"]
assert "LICENSE" in (meta.get_all("License-File") or []), "no License-File"
files = [str(f) for f in md.files("rollback-watchdog") or []]
assert any(f.endswith("licenses/LICENSE") for f in files), "LICENSE not in the wheel"
assert meta["Author"] == "rollback-watchdog contributors", meta["Author"]
urls = meta.get_all("Project-URL") or []
assert any(u.startswith("Homepage, https://github.com/rollback-watchdog/") for u in urls), urls
assert len(meta.get_all("Classifier") or []) >= 5
(script,) = [e for e in md.entry_points(group="console_scripts") if e.name == "watchdog"]
assert script.value == "rollback_watchdog_launcher:main", script.value
print(f"   {len(files)} files; every module but watchdog.store.postgres imports without extras")
EOF
step "every module imports without extras; metadata"

# 4. the commands a new user runs first, from outside the tree
WD="$VENV/bin/watchdog"
version=$("$WD" --version) || fail "watchdog --version"
[ "$version" = "watchdog $("$VENV/bin/python" -I -c 'import watchdog; print(watchdog.__version__)')" ] \
  || fail "watchdog --version printed '$version'"
step "watchdog --version ($version)"

# the example config as a user copies it: secret files and the rule pack next to it
mkdir -p "$RUN/secrets" "$RUN/rules"
cp "$ROOT/rules/default.yaml" "$RUN/rules/default.yaml"
for ref in $(grep -o '\${file:/run/secrets/watchdog/[^}]*}' "$ROOT/deploy/config.example.yaml" | sort -u); do
  name=${ref#\$\{file:/run/secrets/watchdog/}
  name=${name%\}}
  case $name in
    heartbeat_url) echo "https://hc-ping.example.com/dummy" ;;
    slack_webhook_url) echo "https://hooks.slack.com/services/T0/B0/dummy" ;;
    *) echo "dummy-$name" ;;
  esac >"$RUN/secrets/$name"
done
sed -e "s#/run/secrets/watchdog/#$RUN/secrets/#g" \
  -e "s#/etc/watchdog/rules/default.yaml#$RUN/rules/default.yaml#g" \
  "$ROOT/deploy/config.example.yaml" >"$RUN/config.yaml"
"$WD" check --config "$RUN/config.yaml" >"$RUN/check.out" 2>&1 || { cat "$RUN/check.out" >&2; fail "watchdog check --config config.example.yaml"; }
grep -q "^ok: config" "$RUN/check.out" || fail "watchdog check printed no ok line"
step "watchdog check --config config.example.yaml ($(ls "$RUN/secrets" | wc -l) dummy secrets)"

# a PostgreSQL store without the extra: one line naming it, exit 1, no traceback
if WATCHDOG_STORE__URL="postgresql://watchdog:dummy@127.0.0.1:9/watchdog" \
  "$WD" check --config "$RUN/config.yaml" >"$RUN/pg.out" 2>&1; then
  fail "watchdog check accepted a postgresql:// store without asyncpg"
fi
grep -q "pip install 'rollback-watchdog\[postgres\]'" "$RUN/pg.out" || { cat "$RUN/pg.out" >&2; fail "no hint to install the postgres extra"; }
! grep -q "Traceback" "$RUN/pg.out" || { cat "$RUN/pg.out" >&2; fail "traceback for a postgresql:// store"; }
step "postgresql:// store without the extra: one line, exit 1"

cp "$ROOT/examples/bad-deploy.jsonl" "$ROOT/examples/bad-deploy.expected.jsonl" "$RUN/"
"$WD" replay bad-deploy.jsonl >"$RUN/replay.out" || fail "watchdog replay bad-deploy.jsonl"
diff -u bad-deploy.expected.jsonl "$RUN/replay.out" >&2 || fail "replay output differs from bad-deploy.expected.jsonl"
step "watchdog replay examples/bad-deploy.jsonl ($(wc -l <"$RUN/replay.out") decisions, as expected)"

# the quickest scenario (health 500 → P0 → rollback → verified → resolved), time compressed
if ! timeout 120 "$WD" demo --scenario outage --speed 60 >"$RUN/demo.out" 2>&1; then
  tail -40 "$RUN/demo.out" >&2
  fail "watchdog demo --scenario outage --speed 60"
fi
grep -q "^result: as expected" "$RUN/demo.out" || { tail -40 "$RUN/demo.out" >&2; fail "demo did not end as expected"; }
step "watchdog demo --scenario outage --speed 60 (rolled back, verified, resolved)"

# 5. the name clash for real: the filesystem-events library installed into the same venv
#    overwrites watchdog/__init__.py; the command must say so in one line, not a traceback
pip_into_venv install -q --disable-pip-version-check "$FILESYSTEM_EVENTS"
if "$WD" --version >"$RUN/clash.out" 2>&1; then
  fail "watchdog --version ran with the filesystem-events library installed over it"
fi
[ "$(wc -l <"$RUN/clash.out")" -eq 1 ] && grep -q "own virtual environment" "$RUN/clash.out" \
  || { cat "$RUN/clash.out" >&2; fail "the name clash was not reported in one line"; }
step "pip install $FILESYSTEM_EVENTS over it: one line, exit 1"

echo "-- install check passed in $(since "$started")"
