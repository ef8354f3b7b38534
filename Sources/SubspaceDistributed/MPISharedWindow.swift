import CMPI
import Synchronization

/// An MPI-3 shared-memory window (`MPI_Win_allocate_shared`) over a communicator whose ranks share one
/// node: every rank owns one segment and can load and store every other rank's segment directly.
///
/// The window is held in a passive-target epoch (`MPI_Win_lock_all` with `MPI_MODE_NOCHECK`) for its
/// whole life; `sync` (`MPI_Win_sync`, `MPI_Barrier`, `MPI_Win_sync`) orders stores before a barrier
/// against loads after it, the usual pattern for the unified memory model.
///
/// `@unchecked Sendable`: `MPI_Win` imports as `OpaquePointer` and the segments are raw pointers into
/// memory MPI owns, none of them `Sendable`. They are immutable after creation and only dereferenced
/// inside collectives of the owning communicator, which its contract serialises; `isFreed` is guarded by
/// the `live` registry's lock. (The segment pointers outlive any `withUnsafe…` scope because the memory
/// belongs to the window, not to a Swift value.)
final class MPISharedWindow: @unchecked Sendable {
    let window: MPI_Win
    let comm: MPI_Comm
    /// Bytes in each rank's segment (a multiple of 4096).
    let segmentBytes: Int
    /// Each rank's segment, mapped into this process.
    let segments: [UnsafeMutableRawPointer]
    /// Alternates between the two halves of every segment, so one collective step can fill a half while
    /// a slow peer still reads the other half from the previous step (saving a barrier per step). Only
    /// touched inside collectives.
    var nextHalf = 0
    private var isFreed = false

    /// Windows not yet freed, in creation order: `MPI_Win_free` is collective, so `finalize` frees them in
    /// the order every rank created them.
    private static let live = Mutex<[MPISharedWindow]>([])

    private init(window: MPI_Win, comm: MPI_Comm, segmentBytes: Int, segments: [UnsafeMutableRawPointer]) {
        self.window = window
        self.comm = comm
        self.segmentBytes = segmentBytes
        self.segments = segments
    }

    /// Allocates a window with `segmentBytes` (rounded up to 4096) per rank. Collective over `comm`,
    /// whose ranks must share one node.
    static func allocate(
        comm: MPI_Comm, size: Int, segmentBytes requested: Int, context: CollectiveContext
    ) throws(CommunicatorError) -> MPISharedWindow {
        let segmentBytes = max(4096, (requested + 4095) / 4096 * 4096)
        var window: MPI_Win? = subspace_mpi_win_null()
        var base: UnsafeMutableRawPointer? = nil
        let code = withUnsafeMutablePointer(to: &base) { basePointer in
            MPI_Win_allocate_shared(
                segmentBytes, 1, subspace_mpi_info_null(), comm, basePointer, &window)
        }
        try MPIRuntime.check(code, "MPI_Win_allocate_shared", context)
        guard let window else { throw context.invalid("MPI_Win_allocate_shared returned no window") }
        try MPIRuntime.check(
            MPI_Win_set_errhandler(window, subspace_mpi_errors_return()), "MPI_Win_set_errhandler", context)
        var segments = [UnsafeMutableRawPointer]()
        for peer in 0..<size {
            var peerBytes = 0
            var unit: Int32 = 0
            var peerBase: UnsafeMutableRawPointer? = nil
            let code = withUnsafeMutablePointer(to: &peerBase) { pointer in
                MPI_Win_shared_query(window, Int32(peer), &peerBytes, &unit, pointer)
            }
            try MPIRuntime.check(code, "MPI_Win_shared_query", context)
            guard let peerBase, peerBytes >= segmentBytes else {
                throw context.invalid("shared segment of rank \(peer) is missing or short (\(peerBytes) bytes)")
            }
            segments.append(peerBase)
        }
        try MPIRuntime.check(
            MPI_Win_lock_all(subspace_mpi_mode_nocheck, window), "MPI_Win_lock_all", context)
        let result = MPISharedWindow(window: window, comm: comm, segmentBytes: segmentBytes, segments: segments)
        live.withLock { $0.append(result) }
        return result
    }

    /// Makes every rank's stores before the call visible to every rank's loads after it.
    func sync(_ context: CollectiveContext) throws(CommunicatorError) {
        try MPIRuntime.check(MPI_Win_sync(window), "MPI_Win_sync", context)
        try MPIRuntime.check(MPI_Barrier(comm), "MPI_Barrier", context)
        try MPIRuntime.check(MPI_Win_sync(window), "MPI_Win_sync", context)
    }

    /// Ends the epoch and frees the window. Collective over the window's communicator.
    func free(_ context: CollectiveContext) throws(CommunicatorError) {
        let wasFreed = Self.live.withLock { windows in
            windows.removeAll { $0 === self }
            defer { isFreed = true }
            return isFreed
        }
        guard !wasFreed else { return }
        try MPIRuntime.check(MPI_Win_unlock_all(window), "MPI_Win_unlock_all", context)
        var handle: MPI_Win? = window
        try MPIRuntime.check(MPI_Win_free(&handle), "MPI_Win_free", context)
    }

    /// Frees every live window in creation order (for `MPIEnvironment.finalize`).
    static func freeAll(_ context: CollectiveContext) throws(CommunicatorError) {
        let windows = live.withLock { $0 }
        for window in windows {
            try window.free(context)
        }
    }
}
