# Shared by the launch scripts: set-up, build, and a local mpirun. Source it; do not run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages the build and the runs need: Open MPI, OpenBLAS (cblas), LAPACKE, oneDNN (bf16
# products, `training.precision: bf16`); Python 3 with pip for launch/fetch-corpus (pip download) and
# the multi-rank test checks (standard library only).
PACKAGES=(pkg-config libopenmpi-dev openmpi-bin libopenblas-dev liblapacke-dev libdnnl-dev python3 python3-pip)

log() { printf '[launch] %s\n' "$*" >&2; }

# Installs the packages: `apt-get update` every time (a stale list can miss them), then an
# idempotent install. As a non-root user it goes through sudo when there is one.
install_packages() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            log "not root and no sudo: install ${PACKAGES[*]} yourself"; return 0; fi
    fi
    log "installing Debian packages: ${PACKAGES[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

# Release builds target the CPU they are made on when it has AVX2 and FMA (`-target-cpu haswell`, what
# every x86 server since 2013 has): the Swift kernels (GELU, norms, softmax, AdamW) then run eight lanes
# wide instead of SSE2's four. Measured: ~8% more training tokens/s on the default bench shape, and the
# same bits (a 30-step base run's checkpoint is byte-identical either way: Swift does not fuse
# multiply-adds on its own, and every reduction has a fixed lane order). SUBSPACE_TARGET_CPU overrides it:
# a CPU name swiftc knows (e.g. znver3), or `portable` for baseline x86-64 when the binary must run on
# older nodes than the one that builds it. A change of target rebuilds everything once.
release_flags() {
    local cpu="${SUBSPACE_TARGET_CPU:-}"
    if [ -z "$cpu" ]; then
        cpu=portable
        if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then cpu=haswell; fi
    fi
    [ "$cpu" = portable ] || printf '%s\n' -Xswiftc -target-cpu -Xswiftc "$cpu"
}

# Release build of the executable (and, with `all`, the multi-rank test driver).
build_release() {
    local flags; mapfile -t flags < <(release_flags)
    log "swift build -c release ${flags[*]}"
    swift build -c release --product subspace "${flags[@]}"
    [ "${1:-all}" = subspace ] || swift build -c release --product MPITests "${flags[@]}"
}

SUBSPACE="$ROOT/.build/release/subspace"

# mpirun on this machine. Root needs the two ALLOW variables. Ranks are not bound (`--bind-to none`)
# so each may run BLAS threads; the executable divides the node's cores among its ranks itself.
# More ranks than cores is allowed (--oversubscribe). Shared memory + self transports start fastest
# on one node; on a cluster use launch/cluster instead, which leaves the transports to Open MPI.
local_mpirun() {
    local np="$1"; shift
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1 \
        mpirun --bind-to none --oversubscribe -np "$np" "$@"
}
