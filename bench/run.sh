#!/usr/bin/env bash
# The whole benchmark suite on a fresh machine: installs what it needs, builds in release mode and
# runs `gridline-bench` (all scenarios, or the arguments given, e.g. `bash bench/run.sh push --quick`).
#
# Needs: a Rust toolchain, Node.js with npm, and PostgreSQL on 127.0.0.1:5432 where user `postgres`
# may create databases (or GRIDLINE_BENCH_POSTGRES=postgres://…). Everything else lands under
# target/bench/. The table goes to stdout and target/bench/last-run.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work="${CARGO_TARGET_DIR:-$root/target}/bench"
mkdir -p "$work"

log() { printf '== %s\n' "$*" >&2; }

# The peer: PouchDB Server 4.x with its default LevelDB adapter.
peer="$work/peer/node_modules/pouchdb-server/bin/pouchdb-server"
if [ ! -f "$peer" ]; then
  log "installing the peer (npm install pouchdb-server@4)"
  mkdir -p "$work/peer"
  (cd "$work/peer" && npm install --no-audit --no-fund pouchdb-server@4 >&2)
fi
export GRIDLINE_BENCH_PEER="$peer"

# Tools later scenarios compare with (photo derivatives, uploads): libvips and Garage.
if ! command -v vipsthumbnail >/dev/null; then
  log "installing libvips-tools"
  if command -v sudo >/dev/null && [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get install -y libvips-tools >&2 || log "libvips-tools not installed (apt-get failed)"
fi
if ! command -v garage >/dev/null && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  log "installing Garage (cargo install garage --locked)"
  cargo install garage --locked >&2
fi

# weaknet shapes a link between network namespaces: iproute2 (ip, tc) and nftables, as root.
if ! command -v nft >/dev/null || ! command -v tc >/dev/null; then
  log "installing iproute2 and nftables (weaknet)"
  if command -v sudo >/dev/null && [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get install -y iproute2 nftables >&2 || log "nftables not installed: weaknet will say it is not measured"
fi
if [ "$(id -u)" != 0 ]; then
  log "not root: weaknet cannot build its namespaces (run as root, or pass --weak-loopback)"
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  log "PostgreSQL is not answering on 127.0.0.1:5432; start it or run with --db sqlite"
fi

log "building (release)"
# The tool, and the server it runs as a process (`gridline-under-test`, from the tests package).
cargo build --release -p gridline-bench -p gridline-tests --bin gridline-bench --bin gridline-under-test >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/gridline-bench"

log "running: gridline-bench ${*:-all}"
"$bin" "${@:-all}" | tee "$work/last-run.md"
