import CMPI
import Synchronization

/// How an `MPICommunicator` runs a reduction.
public enum MPICollectiveAlgorithm: String, Sendable, CaseIterable {
    /// The MPI library's own collective (`MPI_Allreduce`, `MPI_Reduce_scatter`).
    case mpi
    /// An MPI-3 shared-memory window: every rank reduces its slice of every rank's data in place.
    /// Only for communicators whose ranks share one node.
    case sharedMemory = "shm"
    /// For a communicator over several nodes with the same number of ranks on each: a reduce-scatter through
    /// the node's shared-memory window, an `MPI_Allreduce` of each slice among the ranks holding it on the
    /// other nodes, and an all-gather within the node. Only the slices cross the network, in parallel.
    case hierarchical = "shm+mpi"
}

/// When an `MPICommunicator` reduces through a shared-memory window instead of MPI's collective.
/// Must be set identically on every rank of a communicator, since it decides which calls they make.
///
/// Defaults measured with 2 ranks on one node (Open MPI 4.1.4, vader; `subspace bench allreduce`):
/// the window beats `MPI_Allreduce` from 16 KiB up (≈2× at 16 KiB, 1.4–2× at 1–16 MiB, 3.5–4× at
/// 64 MiB) and loses below 4 KiB, where two barriers cost more than MPI's latency-optimised algorithm.
/// Steps of 512 KiB per rank keep a step's segments in cache; 4 MiB steps were 1.3–2× slower at 16–64 MiB.
public struct SharedMemoryPolicy: Sendable, Equatable {
    /// Use the shared-memory path at all (it is used only when every rank is on one node).
    public var isEnabled: Bool
    /// Reductions of at least this many bytes take the shared-memory path; smaller ones use MPI's.
    public var minimumBytes: Int
    /// Bytes of each rank's contribution processed per step; the window holds two steps per rank.
    public var chunkBytes: Int

    public init(isEnabled: Bool = true, minimumBytes: Int = 16 << 10, chunkBytes: Int = 512 << 10) {
        self.isEnabled = isEnabled
        self.minimumBytes = minimumBytes
        self.chunkBytes = chunkBytes
    }
}

/// A `Communicator` over an MPI communicator: the world, the node, or one made by `split`.
///
/// Every MPI return code is checked and turned into `CommunicatorError.Reason.mpi` (the communicator has
/// `MPI_ERRORS_RETURN`). All-reduce and reduce-scatter of large buffers on a single-node communicator go
/// through a shared-memory window (see `SharedMemoryPolicy`); everything else calls MPI directly.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    /// Whether every rank of this communicator runs on this node (so shared memory can reach them all).
    public let isSingleNode: Bool
    let handle: MPICommHandle
    private let sequenceCounter = Atomic<Int>(0)
    /// Whether `free()` releases the handle: true for communicators made by `split`.
    let ownsHandle: Bool
    private let isFreed = Atomic<Bool>(false)
    let state: Mutex<State>

    struct State {
        var policy = SharedMemoryPolicy()
        var window: MPISharedWindow?
        /// The node and cross-node communicators of `.hierarchical` (see `enableNodeHierarchy`).
        var hierarchy: (node: MPICommunicator, cross: MPICommunicator)?
        /// The hierarchical all-reduce's slice, reused between calls.
        var scratch: UnsafeMutableRawPointer?
        var scratchBytes = 0
    }

    /// Wraps `comm` (which this object then uses for its lifetime), sets `MPI_ERRORS_RETURN` on it and, if
    /// `singleNode` is nil, finds out collectively whether all its ranks share a node.
    init(adopting comm: MPI_Comm, singleNode: Bool?, owned: Bool = false) throws(CommunicatorError) {
        ownsHandle = owned
        let context = CollectiveContext(operation: "MPICommunicator.init", sequence: 0, rank: 0)
        try MPIRuntime.check(
            MPI_Comm_set_errhandler(comm, subspace_mpi_errors_return()), "MPI_Comm_set_errhandler", context)
        var value: Int32 = 0
        try MPIRuntime.check(MPI_Comm_rank(comm, &value), "MPI_Comm_rank", context)
        rank = Int(value)
        try MPIRuntime.check(MPI_Comm_size(comm, &value), "MPI_Comm_size", context)
        size = Int(value)
        handle = MPICommHandle(comm)
        state = Mutex(State())
        if let singleNode {
            isSingleNode = singleNode
        } else {
            var node: MPI_Comm? = subspace_mpi_comm_null()
            try MPIRuntime.check(
                MPI_Comm_split_type(comm, subspace_mpi_comm_type_shared, 0, subspace_mpi_info_null(), &node),
                "MPI_Comm_split_type", context)
            var nodeSize: Int32 = 0
            try MPIRuntime.check(MPI_Comm_size(node, &nodeSize), "MPI_Comm_size", context)
            try MPIRuntime.check(MPI_Comm_free(&node), "MPI_Comm_free", context)
            // Equal sizes on every rank or on none, so all ranks reach the same verdict.
            isSingleNode = Int(nodeSize) == size
        }
    }

    /// The ranks of this communicator on this node. Collective.
    func splitByNode() throws(CommunicatorError) -> MPICommunicator {
        let context = try begin("splitByNode")
        var node: MPI_Comm? = subspace_mpi_comm_null()
        try MPIRuntime.check(
            MPI_Comm_split_type(handle.comm, subspace_mpi_comm_type_shared, Int32(rank), subspace_mpi_info_null(), &node),
            "MPI_Comm_split_type", context)
        guard let node else { throw context.invalid("MPI_Comm_split_type returned MPI_COMM_NULL") }
        return try MPICommunicator(adopting: node, singleNode: true)
    }

    /// Numbers the next collective, and refuses it once MPI has been finalised (MPI calls would then
    /// abort the process rather than return an error).
    func begin(_ operation: String) throws(CommunicatorError) -> CollectiveContext {
        let sequence = sequenceCounter.wrappingAdd(1, ordering: .relaxed).newValue
        let context = CollectiveContext(operation: operation, sequence: sequence, rank: rank)
        guard !MPIRuntime.isFinalized.load(ordering: .acquiring) else {
            throw context.invalid("MPI has already been finalized")
        }
        return context
    }

    /// The shared-memory policy of this communicator; set it identically on every rank.
    public var sharedMemoryPolicy: SharedMemoryPolicy {
        get { state.withLock { $0.policy } }
        set { state.withLock { $0.policy = newValue } }
    }

    /// The algorithm `allReduce` and `reduceScatter` use for a reduction of `byteCount` bytes.
    public func reductionAlgorithm(forBytes byteCount: Int) -> MPICollectiveAlgorithm {
        let (policy, hierarchical) = state.withLock { ($0.policy, $0.hierarchy != nil) }
        guard size > 1, policy.isEnabled, byteCount >= policy.minimumBytes else { return .mpi }
        return isSingleNode ? .sharedMemory : hierarchical ? .hierarchical : .mpi
    }

    public func allReduceAlgorithm(forBytes byteCount: Int) -> String {
        reductionAlgorithm(forBytes: byteCount).rawValue
    }

    // MARK: Collectives

    public func allReduce<T: CollectiveElement>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp
    ) throws(CommunicatorError) {
        try allReduce(buffer, op: op, algorithm: nil)
    }

    /// `allReduce` with the algorithm forced (nil: chosen by `reductionAlgorithm(forBytes:)`).
    /// `.sharedMemory` requires `isSingleNode`. Every rank must force the same algorithm.
    public func allReduce<T: CollectiveElement>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp, algorithm: MPICollectiveAlgorithm?
    ) throws(CommunicatorError) {
        let context = try begin("allReduce")
        try context.validateElement(T.self)
        let bytes = buffer.count * MemoryLayout<T>.stride
        let chosen = algorithm ?? reductionAlgorithm(forBytes: bytes)
        guard size > 1, let base = buffer.baseAddress else { return }
        switch chosen {
        case .sharedMemory:
            try sharedMemoryAllReduce(
                UnsafeMutableRawPointer(base), count: buffer.count, kind: T.collectiveKind, op: op,
                context: context)
        case .hierarchical:
            try hierarchicalAllReduce(buffer, op: op, context: context)
        case .mpi:
            var done = 0
            while done < buffer.count {
                let n = min(MPIRuntime.maximumCount, buffer.count - done)
                try MPIRuntime.check(
                    MPI_Allreduce(
                        UnsafeRawPointer(subspace_mpi_in_place()), base + done, Int32(n),
                        MPIRuntime.datatype(T.collectiveKind), MPIRuntime.op(op, T.collectiveKind), handle.comm),
                    "MPI_Allreduce", context)
                done += n
            }
        }
    }

    public func reduceScatter<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>,
        op: ReduceOp
    ) throws(CommunicatorError) {
        try reduceScatter(input, counts: counts, output: output, op: op, algorithm: nil)
    }

    /// `reduceScatter` with the algorithm forced (nil: chosen by `reductionAlgorithm(forBytes:)` for the
    /// input's bytes). Every rank must force the same algorithm.
    public func reduceScatter<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>,
        op: ReduceOp, algorithm: MPICollectiveAlgorithm?
    ) throws(CommunicatorError) {
        let context = try begin("reduceScatter")
        try context.validateElement(T.self)
        let (offsets, total) = try context.validateCounts(counts, size: size)
        try context.validateCount("input", input.count, expected: total)
        try context.validateCount("output", output.count, expected: counts[rank])
        guard total > 0, let source = input.baseAddress else { return }
        if size == 1 {
            output.baseAddress!.update(from: source, count: total)
            return
        }
        let automatic = reductionAlgorithm(forBytes: total * MemoryLayout<T>.stride)
        switch algorithm ?? (automatic == .hierarchical ? .mpi : automatic) {
        case .hierarchical:
            throw context.invalid("the hierarchical algorithm is for all-reduce only")
        case .sharedMemory:
            try sharedMemoryReduceScatter(
                UnsafeRawPointer(source), counts: counts, offsets: offsets,
                output: output.baseAddress.map { UnsafeMutableRawPointer($0) },
                kind: T.collectiveKind, op: op, context: context)
        case .mpi:
            let counts32 = try counts.map { (c) throws(CommunicatorError) in
                try MPIRuntime.int32(c, "count", context)
            }
            // MPI_Reduce_scatter rather than MPI_Allreduce of a copy. Measured with 2 ranks on one node it is
            // 1.2–1.5× faster up to 16 MiB and 1.7× slower at 64 MiB (PLATFORM.md's 2–5× gap is the
            // large-message end). Single-node communicators take the shared-memory path anyway (2–9×
            // faster than either), so this path serves multi-node ones, where a ring reduce-scatter moves
            // half an all-reduce's bytes; and it needs no full-size scratch copy.
            var scratch: T = input[0]
            try withUnsafeMutablePointer(to: &scratch) { (placeholder) throws(CommunicatorError) in
                // A rank with no elements still passes a valid receive address.
                let destination = output.baseAddress ?? placeholder
                try MPIRuntime.check(
                    MPI_Reduce_scatter(
                        source, destination, counts32, MPIRuntime.datatype(T.collectiveKind),
                        MPIRuntime.op(op, T.collectiveKind), handle.comm),
                    "MPI_Reduce_scatter", context)
            }
        }
    }

    public func allGather<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>
    ) throws(CommunicatorError) {
        let context = try begin("allGather")
        try context.validateElement(T.self)
        let (offsets, total) = try context.validateCounts(counts, size: size)
        try context.validateCount("input", input.count, expected: counts[rank])
        try context.validateCount("output", output.count, expected: total)
        guard total > 0, let destination = output.baseAddress else { return }
        let counts32 = try counts.map { (c) throws(CommunicatorError) in try MPIRuntime.int32(c, "count", context) }
        let offsets32 = try offsets.map { (o) throws(CommunicatorError) in try MPIRuntime.int32(o, "offset", context) }
        let type = MPIRuntime.datatype(T.collectiveKind)
        try MPIRuntime.check(
            MPI_Allgatherv(
                input.baseAddress ?? UnsafePointer(destination), counts32[rank], type, destination, counts32,
                offsets32, type, handle.comm),
            "MPI_Allgatherv", context)
    }

    public func broadcast<T: CollectiveElement>(
        _ buffer: UnsafeMutableBufferPointer<T>, root: Int
    ) throws(CommunicatorError) {
        let context = try begin("broadcast")
        try context.validateElement(T.self)
        try context.validateRoot(root, size: size)
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let n = min(MPIRuntime.maximumCount, buffer.count - done)
            try MPIRuntime.check(
                MPI_Bcast(base + done, Int32(n), MPIRuntime.datatype(T.collectiveKind), Int32(root), handle.comm),
                "MPI_Bcast", context)
            done += n
        }
    }

    public func gather<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>?,
        root: Int
    ) throws(CommunicatorError) {
        let context = try begin("gather")
        try context.validateElement(T.self)
        try context.validateRoot(root, size: size)
        let (offsets, total) = try context.validateCounts(counts, size: size)
        try context.validateCount("input", input.count, expected: counts[rank])
        if rank == root {
            guard let output else { throw context.invalid("output is nil on the root") }
            try context.validateCount("output", output.count, expected: total)
        }
        guard total > 0 else { return }
        let counts32 = try counts.map { (c) throws(CommunicatorError) in try MPIRuntime.int32(c, "count", context) }
        let offsets32 = try offsets.map { (o) throws(CommunicatorError) in try MPIRuntime.int32(o, "offset", context) }
        let type = MPIRuntime.datatype(T.collectiveKind)
        let destination = rank == root ? output?.baseAddress : nil
        try MPIRuntime.check(
            MPI_Gatherv(
                input.baseAddress, counts32[rank], type, destination, counts32, offsets32, type,
                Int32(root), handle.comm),
            "MPI_Gatherv", context)
    }

    public func barrier() throws(CommunicatorError) {
        let context = try begin("barrier")
        try MPIRuntime.check(MPI_Barrier(handle.comm), "MPI_Barrier", context)
    }

    /// Frees the shared-memory window (if any) and `MPI_Comm_free`s a communicator made by `split`
    /// (the world and node communicators are left to `MPI_Finalize`). Collective; later calls do nothing.
    public func free() throws(CommunicatorError) {
        let context = try begin("free")
        guard ownsHandle, !isFreed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if let window = state.withLock({ state in defer { state.window = nil }; return state.window }) {
            try window.free(context)
        }
        var comm: MPI_Comm? = handle.comm
        try MPIRuntime.check(MPI_Comm_free(&comm), "MPI_Comm_free", context)
    }

    public func split(color: Int, key: Int) throws(CommunicatorError) -> any Communicator {
        try splitCommunicator(color: color, key: key)
    }

    /// `split`, returning the concrete type. The new communicator has `MPI_ERRORS_RETURN` and this
    /// communicator's shared-memory policy.
    public func splitCommunicator(color: Int, key: Int) throws(CommunicatorError) -> MPICommunicator {
        let context = try begin("split")
        guard color >= 0 else { throw context.invalid("color \(color) is negative") }
        let color32 = try MPIRuntime.int32(color, "color", context)
        let key32 = try MPIRuntime.int32(key, "key", context)
        var new: MPI_Comm? = subspace_mpi_comm_null()
        try MPIRuntime.check(MPI_Comm_split(handle.comm, color32, key32, &new), "MPI_Comm_split", context)
        guard let new else { throw context.invalid("MPI_Comm_split returned MPI_COMM_NULL") }
        // A subset of one node's ranks is still on one node; otherwise ask (a collective on `new`).
        let communicator = try MPICommunicator(adopting: new, singleNode: isSingleNode ? true : nil, owned: true)
        communicator.sharedMemoryPolicy = sharedMemoryPolicy
        return communicator
    }
}
