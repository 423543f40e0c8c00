# shellcheck shell=bash
# Shared setup for scripts/run and scripts/test: installs what is missing, from the package registries
# only (Debian packages, crates.io, npm), and nothing that is already there. Safe to run again and again.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="${DEPLOYCLAW_CACHE:-$HOME/.cache/deployclaw}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
TOOLS="$CACHE/tools"
export PATH="$HOME/.cargo/bin:$TOOLS/node_modules/.bin:$PATH"

# CI works in a new clone every time: incremental caches would only pile up there.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi

CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen crate version in Cargo.lock
BINARYEN_VERSION=132.0.0       # Debian's binaryen 108 emits WASM that fails to hydrate
CARGO_DENY_VERSION=0.20.2      # licences, bans, sources and advisories of the dependency tree (deny.toml)

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
ensure_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
}

ensure_node() {
  command -v node >/dev/null && command -v npm >/dev/null || ensure_debs nodejs npm
}

# Tools we run but never ship: built without their crates' release LTO and single codegen unit, which take most
# of the build time (cargo-deny on 2 cores: 8.5 minutes as published, 3.5 like this).
cargo_install_tool() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo install "$@"
}

ensure_build_tools() {
  ensure_rust
  ensure_node
  ensure_debs pkg-config
  if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    log "installing cargo-leptos $CARGO_LEPTOS_VERSION (one time, several minutes)"
    cargo_install_tool "cargo-leptos@$CARGO_LEPTOS_VERSION" --locked
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (one time, ~4 minutes)"
    # Not --locked: its lockfile pins a crate version the registry no longer serves.
    cargo_install_tool "wasm-bindgen-cli@$WASM_BINDGEN_VERSION"
  fi
  if ! wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_VERSION%%.*}"; then
    log "installing wasm-opt from npm binaryen@$BINARYEN_VERSION"
    mkdir -p "$TOOLS"
    npm install --silent --no-fund --no-audit --prefix "$TOOLS" "binaryen@$BINARYEN_VERSION" >/dev/null
  fi
}

# Supply-chain checks (scripts/test runs them before the Rust tests; each also runs by hand after
# `source scripts/lib.sh`). cargo-deny from crates.io, built in a target directory of its own so that its
# one-time build never holds the shared build directory's lock.
ensure_cargo_deny() {
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
  if ! cargo deny --version 2>/dev/null | grep -qF "$CARGO_DENY_VERSION"; then
    log "installing cargo-deny $CARGO_DENY_VERSION (one time, ~4 minutes on 2 cores)"
    cargo_install_tool "cargo-deny@$CARGO_DENY_VERSION" --locked --target-dir "$CACHE/install-target"
  fi
}

# secretlint from npm, pinned by tools/secretlint/package-lock.json; `npm ci` only when that lockfile changed
# since the last install (a stamp inside node_modules, as for end2end/).
SECRETLINT_DIR="$ROOT/tools/secretlint"
ensure_secretlint() {
  ensure_node
  if ! cmp -s "$SECRETLINT_DIR/package-lock.json" "$SECRETLINT_DIR/node_modules/.deployclaw-installed-lock"; then
    log "installing secretlint (npm ci in tools/secretlint)"
    (cd "$SECRETLINT_DIR" && npm ci --no-fund --no-audit --silent)
    cp "$SECRETLINT_DIR/package-lock.json" "$SECRETLINT_DIR/node_modules/.deployclaw-installed-lock"
  fi
}

# Licences, banned crates and sources of every dependency of every workspace crate, by deny.toml. Needs no
# network beyond crates.io. Several versions of one crate are allowed (deny.toml says why): they are named on
# one line instead of a page of warnings; anything else cargo-deny says is shown as it said it.
check_dependency_policy() {
  ensure_cargo_deny
  local out rc=0 dups
  out=$(cd "$ROOT" && cargo deny --locked --workspace check --hide-inclusion-graph licenses bans sources 2>&1) || rc=$?
  awk -v RS= -v ORS='\n\n' '!/^warning\[duplicate\]/' <<<"$out"
  dups=$({ grep -Eo "^warning\[duplicate\]: found [0-9]+ duplicate entries for crate '[^']+'" <<<"$out" || true; } \
    | sed -E "s/.*crate '([^']+)'/\1/" | tr '\n' ' ')
  [ -z "$dups" ] || log "crates in several versions (allowed by deny.toml): $dups"
  return "$rc"
}

# Every tracked file through secretlint's recommended rules (.secretlintrc.json: the preset, plus the made-up
# credentials our tests need, each allowed by its exact value). Any finding fails; the report masks values.
scan_tracked_files_for_secrets() {
  ensure_secretlint
  local files=()
  # Tracked files that exist: a file deleted in the work tree but not yet in git has nothing to scan.
  while IFS= read -r -d '' f; do
    if [ -f "$ROOT/$f" ]; then files+=("$f"); fi
  done < <(git -C "$ROOT" ls-files -z)
  [ ${#files[@]} -gt 0 ] || die "git ls-files listed no file to scan"
  log "secretlint: ${#files[@]} tracked files"
  (cd "$ROOT" && "$SECRETLINT_DIR/node_modules/.bin/secretlint" --no-glob --no-color --format unix "${files[@]}")
}

# The RustSec advisories for every dependency, where cargo-deny can fetch their database. Where it cannot
# (no route to it: this project's own machines and CI), the check is reported as skipped with the reason,
# never as passed. SKIP_NOTE, when set (scripts/test's step), is the file the reason goes to.
ADVISORY_FETCH_TIMEOUT=${DEPLOYCLAW_ADVISORY_FETCH_TIMEOUT:-90}
check_advisories() {
  ensure_cargo_deny
  local out rc=0 why
  out=$(cd "$ROOT" && timeout "$ADVISORY_FETCH_TIMEOUT" cargo deny fetch db 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    # Only an unreachable database is a skip; anything else (an invalid deny.toml) is a failure.
    if [ "$rc" -eq 124 ]; then
      why="it did not finish within ${ADVISORY_FETCH_TIMEOUT} s"
    elif grep -q 'failed to fetch' <<<"$out"; then
      why="it failed (exit $rc, its last lines are above)"
    else
      printf '%s\n' "$out" >&2
      return "$rc"
    fi
    printf '%s\n' "$out" | tail -n 3 >&2
    skipped "no advisory database" \
      "cargo deny could not fetch the RustSec advisory database: $why. No dependency was checked for known vulnerabilities."
    return 0
  fi
  (cd "$ROOT" && timeout 600 cargo deny --locked --workspace check --hide-inclusion-graph advisories)
}

# skipped REASON DETAIL: a check that cannot run here says so, loudly; inside a scripts/test step the short
# REASON also goes to $SKIP_NOTE, so the step is shown as skipped and counted as neither passed nor failed.
skipped() {
  printf '\033[1;33m==> SKIPPED (%s):\033[0m %s\n' "$1" "${2:-}" >&2
  if [ -n "${SKIP_NOTE:-}" ]; then printf '%s\n' "$1" >"$SKIP_NOTE"; fi
}

# The build cache lives outside the clone and survives between runs; keep it from filling the disk.
TARGET_CAP_GB=${DEPLOYCLAW_TARGET_CAP_GB:-30}
prune_build_cache() {
  [ -d "$CARGO_TARGET_DIR" ] || return 0
  local kb
  kb=$(du -sk "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1)
  if [ "${kb:-0}" -gt $((TARGET_CAP_GB * 1024 * 1024)) ]; then
    log "build cache is $((kb / 1024 / 1024)) GB (cap ${TARGET_CAP_GB} GB): removing its debug and incremental parts"
    rm -rf "$CARGO_TARGET_DIR/debug" "$CARGO_TARGET_DIR"/*/incremental "$CARGO_TARGET_DIR"/front/*/incremental
  fi
}

build_release() {
  # --precompress writes .br and .gz beside every site file (served by Accept-Encoding); hash-files in
  # Cargo.toml names the bundle by content and writes hash.txt beside the server binary.
  log "building the release server and WASM bundle (cargo leptos build --release --precompress)"
  (cd "$ROOT" && cargo leptos build --release --precompress)
}

# PostgreSQL for the database tests: Debian's server, a local cluster started without systemd, and a
# test role that may create databases (each test makes its own). The password is a local test value.
PG_TEST_ROLE=deployclaw_test
PG_TEST_PASSWORD=deployclaw_test_only
PG_AUDIT_RETENTION_ROLE=deployclaw_audit_retention
ensure_postgres() {
  ensure_debs postgresql postgresql-client
  local cluster ver name port status
  cluster=$(pg_lsclusters --no-header 2>/dev/null | head -n 1)
  if [ -z "$cluster" ]; then
    ver=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    log "creating PostgreSQL $ver cluster"
    as_root pg_createcluster "$ver" main >/dev/null
    cluster=$(pg_lsclusters --no-header | head -n 1)
  fi
  read -r ver name port status _ <<<"$cluster"
  if [ "$status" != "online" ]; then
    log "starting PostgreSQL $ver/$name on port $port"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start
  fi
  local i
  for i in $(seq 1 30); do
    as_root runuser -u postgres -- pg_isready -q -p "$port" && break
    sleep 1
  done
  as_root runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 -d postgres <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_TEST_ROLE') THEN
    CREATE ROLE $PG_TEST_ROLE LOGIN CREATEDB PASSWORD '$PG_TEST_PASSWORD';
  END IF;
  -- The audit retention role (docs/audit.md): NOLOGIN; the test role may switch to it (SET LOCAL ROLE), as the
  -- application does for retention deletes. Created here because the test role may not create roles.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_AUDIT_RETENTION_ROLE') THEN
    CREATE ROLE $PG_AUDIT_RETENTION_ROLE NOLOGIN;
  END IF;
  IF NOT pg_has_role('$PG_TEST_ROLE', '$PG_AUDIT_RETENTION_ROLE', 'MEMBER') THEN
    GRANT $PG_AUDIT_RETENTION_ROLE TO $PG_TEST_ROLE;
  END IF;
END \$\$;
SQL
  # Databases left behind by an interrupted earlier run.
  local leftovers
  leftovers=$(as_root runuser -u postgres -- psql -At -p "$port" -d postgres -c \
    "SELECT datname FROM pg_database WHERE datname LIKE 'dc_test_%'")
  for db in $leftovers; do
    as_root runuser -u postgres -- psql -q -p "$port" -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  done
  export DEPLOYCLAW_TEST_POSTGRES_URL="postgres://$PG_TEST_ROLE:$PG_TEST_PASSWORD@127.0.0.1:$port/postgres"
}

# A real SMTP server for the mail tests: Python's aiosmtpd in a project-owned venv (the tests start it).
ensure_smtp_server() {
  ensure_debs python3-venv
  local venv="$CACHE/venv-smtp"
  if ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    log "installing aiosmtpd 1.4.6 into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check aiosmtpd==1.4.6
  fi
  export DEPLOYCLAW_TEST_SMTP_PYTHON="$venv/bin/python"
}

# podman as the project uses it: Debian's podman with runc, configured by the project's own
# config/containers.conf through CONTAINERS_CONF (nothing under /etc is edited). Enough to build images and
# run containers by hand; every podman command after this call uses the same config.
ensure_podman() {
  ensure_debs podman runc curl
  export CONTAINERS_CONF="$ROOT/config/containers.conf"
}

# The local container runtime for agents: podman's Docker-compatible API on a socket under $CACHE, exported
# as DOCKER_HOST for the runtime driver. The service runs in the background and outlives the caller; a
# later call finds it answering and reuses it. Its log is $CACHE/podman/service.log, its PID service.pid.
PODMAN_DIR="$CACHE/podman"
PODMAN_SOCK="$PODMAN_DIR/podman.sock"
podman_api_answers() {
  [ -S "$PODMAN_SOCK" ] && curl -fsS --max-time 2 --unix-socket "$PODMAN_SOCK" http://d/_ping 2>/dev/null | grep -qx OK
}
ensure_container_runtime() {
  ensure_podman
  export DOCKER_HOST="unix://$PODMAN_SOCK"
  mkdir -p "$PODMAN_DIR"
  # Two scripts starting at once must not both start a service (or delete each other's socket).
  local lock_fd
  exec {lock_fd}>"$PODMAN_DIR/service.lock"
  flock -w 30 "$lock_fd" || die "another process holds $PODMAN_DIR/service.lock"
  if podman_api_answers; then
    exec {lock_fd}>&-
    return 0
  fi
  # The runtime must actually work with this config before anything talks to the API.
  podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null | grep -qx runc \
    || die "podman does not run with runc under $CONTAINERS_CONF: see 'podman info'"
  log "starting the podman API service on $PODMAN_SOCK (log: $PODMAN_DIR/service.log)"
  rm -f "$PODMAN_SOCK"   # left by a service that died; nothing answered on it above
  # setsid: the service outlives this script and a Ctrl-C in its terminal. --time=0: no idle exit.
  # The lock's descriptor is closed for it, or the long-lived service would hold the lock forever.
  # It runs from /: conmon inherits the service's working directory and fails every container start
  # ("write child: broken pipe") once that directory is gone, e.g. a checkout that was removed.
  (cd / && exec setsid podman system service --time=0 "unix://$PODMAN_SOCK" </dev/null >>"$PODMAN_DIR/service.log" 2>&1 {lock_fd}>&-) &
  local pid=$! deadline=$((SECONDS + 20))
  echo "$pid" >"$PODMAN_DIR/service.pid"
  for _ in $(seq 1 40); do
    podman_api_answers && break
    kill -0 "$pid" 2>/dev/null || break   # it exited: waiting longer would not help
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
  done
  if ! podman_api_answers; then
    kill "$pid" 2>/dev/null || true   # a service that never answered must not linger beside the next try
    die "podman API did not answer on $PODMAN_SOCK within 20 s; see $PODMAN_DIR/service.log"
  fi
  exec {lock_fd}>&-
}
