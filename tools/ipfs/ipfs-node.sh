#!/usr/bin/env bash
# Start a private, offline js-ipfs node (Kubo-compatible RPC API) on 127.0.0.1:<api-port>.
#   tools/ipfs/ipfs-node.sh <repo-dir> <api-port>
# Initialises <repo-dir> on first use, then `exec`s the daemon so this script's PID is the
# node's PID (stop it with `kill <pid>`). Needs `make ipfs-install` (npm ci in tools/ipfs).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <repo-dir> <api-port>" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$1"
PORT="$2"
NODE="$HERE/node_modules/node/bin/node"
CLI="$HERE/node_modules/ipfs/src/cli.js"
if [ ! -x "$NODE" ] || [ ! -f "$CLI" ]; then
  echo "js-ipfs is not installed in $HERE: run 'make ipfs-install' (npm ci there)" >&2
  exit 3
fi
export IPFS_PATH="$REPO"
if [ ! -f "$REPO/config" ]; then
  mkdir -p "$REPO"
  "$NODE" "$CLI" init --emptyRepo >/dev/null
fi
"$NODE" "$HERE/configure.js" "$REPO/config" "$PORT"
exec "$NODE" "$CLI" daemon --offline
