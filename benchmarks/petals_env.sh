#!/usr/bin/env bash
# Petals 2.2 as a benchmark reference, in its own venv (never a Pollen dependency).
#
# Builds .cache/petals-venv offline apart from PyPI, following /work/shared/TOOLCHAIN.md
# ("Petals 2.2 as a reference"): petals==2.2.0.post1 pins hivemind==1.1.10.post2, which is
# source-only and whose setup.py downloads a p2pd binary from GitHub (unreachable). The
# hivemind 1.1.12 manylinux wheel ships the same daemon (same p2pd.proto), so it is copied into
# the 1.1.10.post2 source tree and setup.py is told its sha256; hivemind's grad scaler import is
# moved from torch.cuda.amp to torch.amp (torch >= 2.3); accelerate and multiaddr are pinned.
# Idempotent: a stamp file in the venv says it is done.
#
#     bash benchmarks/petals_env.sh            # or: make bench-petals-setup
#     PETALS_VENV=/elsewhere bash benchmarks/petals_env.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${PETALS_VENV:-$ROOT/.cache/petals-venv}"
BUILD="${PETALS_BUILD:-$ROOT/.cache/petals-build}"
STAMP="$VENV/.petals-2.2.0.post1-ready"
PIP="$VENV/bin/pip"
[ -f "$STAMP" ] && { echo "petals venv ready: $VENV"; exit 0; }

echo "==> Petals 2.2 reference venv under $VENV (build files in $BUILD)"
rm -rf "$BUILD" && mkdir -p "$BUILD/wheels"
rm -rf "$VENV" && python3.11 -m venv "$VENV"  # no stamp: start clean
"$PIP" install -q "torch==2.13.0" "setuptools<81" wheel grpcio-tools

# 1. hivemind 1.1.10.post2 source + the p2pd binary from the 1.1.12 wheel
"$PIP" download -q --no-deps --no-build-isolation --no-binary :all: "hivemind==1.1.10.post2" -d "$BUILD"
"$PIP" download -q --no-deps --only-binary :all: "hivemind==1.1.12" -d "$BUILD"
tar -xzf "$BUILD"/hivemind-1.1.10.post2.tar.gz -C "$BUILD"
SRC="$BUILD/hivemind-1.1.10.post2"
"$VENV/bin/python" - "$BUILD" "$SRC" <<'EOF'
import glob, hashlib, os, re, sys, zipfile
build, src = sys.argv[1:]
wheel = glob.glob(os.path.join(build, "hivemind-1.1.12-*.whl"))[0]
target = os.path.join(src, "hivemind", "hivemind_cli", "p2pd")
with zipfile.ZipFile(wheel) as z, open(target, "wb") as out:
    out.write(z.read("hivemind/hivemind_cli/p2pd"))
os.chmod(target, 0o755)
digest = hashlib.sha256(open(target, "rb").read()).hexdigest()
setup = os.path.join(src, "setup.py")
text, n = re.subn(r'("p2pd-linux-amd64": )"[0-9a-f]+"', rf'\1"{digest}"', open(setup).read())
assert n == 1, "the linux-amd64 entry of P2P_BINARY_HASH is not in hivemind's setup.py"
open(setup, "w").write(text)
scaler = os.path.join(src, "hivemind", "optim", "grad_scaler.py")
text = open(scaler).read().replace("torch.cuda.amp", "torch.amp")
open(scaler, "w").write(text)
print(f"p2pd from {os.path.basename(wheel)}: sha256 {digest}")
EOF
"$PIP" wheel -q --no-build-isolation --no-deps "$SRC" -w "$BUILD/wheels"

# 2. petals with the patched hivemind and the pins that work here
"$PIP" install -q --find-links "$BUILD/wheels" "hivemind==1.1.10.post2" "petals==2.2.0.post1" \
    "multiaddr==0.0.9" "accelerate==0.27.2"
"$VENV/bin/python" -c "import petals, hivemind; print('petals', petals.__version__, 'hivemind', hivemind.__version__)"
touch "$STAMP"
echo "petals venv ready: $VENV"
