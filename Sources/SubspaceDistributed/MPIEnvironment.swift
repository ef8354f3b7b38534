import CMPI
import Synchronization

/// The thread support levels of `MPI_Init_thread`, in increasing order.
public enum MPIThreadLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case single, funneled, serialized, multiple

    var mpiValue: Int32 {
        switch self {
        case .single: subspace_mpi_thread_single
        case .funneled: subspace_mpi_thread_funneled
        case .serialized: subspace_mpi_thread_serialized
        case .multiple: subspace_mpi_thread_multiple
        }
    }

    init?(mpiValue: Int32) {
        guard let level = Self.allCases.first(where: { $0.mpiValue == mpiValue }) else { return nil }
        self = level
    }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .single: "MPI_THREAD_SINGLE"
        case .funneled: "MPI_THREAD_FUNNELED"
        case .serialized: "MPI_THREAD_SERIALIZED"
        case .multiple: "MPI_THREAD_MULTIPLE"
        }
    }
}

/// The process's MPI runtime: initialised once, with the world and node-local communicators.
///
/// `initialize` works under `mpirun` and as a singleton (a process started without `mpirun` is a world of
/// one). Errors on the world and every communicator derived from it are returned, not fatal
/// (`MPI_ERRORS_RETURN`), and surface as `CommunicatorError.Reason.mpi`. Call `finalize()` once before
/// the process exits, on every rank; on an unrecoverable error call `abort(code:)` so that no other rank
/// is left waiting in a collective.
public final class MPIEnvironment: Sendable {
    /// The thread level asked of `MPI_Init_thread`.
    public let requestedThreadLevel: MPIThreadLevel
    /// The thread level MPI provides; may be lower than requested.
    public let providedThreadLevel: MPIThreadLevel
    /// All ranks of the job.
    public let world: MPICommunicator
    /// The ranks of the job on this node (`MPI_Comm_split_type` with `MPI_COMM_TYPE_SHARED`).
    public let node: MPICommunicator
    /// `MPI_Get_processor_name`: usually the host name.
    public let processorName: String
    /// False when MPI had been initialised before `initialize` was called; `finalize` then leaves the
    /// `MPI_Finalize` call to whoever initialised it.
    public let ownsInitialization: Bool

    /// This rank's index among the ranks on its node.
    public var nodeRank: Int { node.rank }
    /// The number of ranks on this node.
    public var nodeSize: Int { node.size }

    private let finalized = Atomic<Bool>(false)

    private static let shared = Mutex<MPIEnvironment?>(nil)

    private init(
        requested: MPIThreadLevel, provided: MPIThreadLevel, world: MPICommunicator,
        node: MPICommunicator, processorName: String, ownsInitialization: Bool
    ) {
        self.requestedThreadLevel = requested
        self.providedThreadLevel = provided
        self.world = world
        self.node = node
        self.processorName = processorName
        self.ownsInitialization = ownsInitialization
    }

    /// The environment, once `initialize` has succeeded.
    public static var current: MPIEnvironment? { shared.withLock { $0 } }

    /// Initialises MPI for this process (once; later calls return the same environment and ignore
    /// `threadLevel`) and sets `MPI_ERRORS_RETURN` on the world communicator.
    ///
    /// Throws if MPI has already been finalised (MPI cannot be initialised twice) or any MPI call fails.
    public static func initialize(
        threadLevel: MPIThreadLevel = .funneled
    ) throws(CommunicatorError) -> MPIEnvironment {
        try shared.withLock { (current) throws(CommunicatorError) -> MPIEnvironment in
            if let current { return current }
            let context = CollectiveContext(operation: "MPIEnvironment.initialize", sequence: 0, rank: 0)
            var flag: Int32 = 0
            try MPIRuntime.check(MPI_Finalized(&flag), "MPI_Finalized", context)
            if flag != 0 { throw context.invalid("MPI has already been finalized in this process") }
            try MPIRuntime.check(MPI_Initialized(&flag), "MPI_Initialized", context)
            let owns = flag == 0
            var provided: Int32 = 0
            if owns {
                try MPIRuntime.check(
                    MPI_Init_thread(nil, nil, threadLevel.mpiValue, &provided), "MPI_Init_thread", context)
            } else {
                try MPIRuntime.check(MPI_Query_thread(&provided), "MPI_Query_thread", context)
            }
            try MPIRuntime.createWrappingByteSum(context)
            let world = try MPICommunicator(adopting: subspace_mpi_comm_world(), singleNode: nil)
            let node = try world.splitByNode()
            // Several nodes with equal ranks on each: large all-reduces go through each node's shared memory
            // and only slices cross the network (MPICollectiveAlgorithm.hierarchical).
            try world.enableNodeHierarchy()
            var name = [CChar](repeating: 0, count: Int(subspace_mpi_max_processor_name) + 1)
            var length: Int32 = 0
            try MPIRuntime.check(MPI_Get_processor_name(&name, &length), "MPI_Get_processor_name", context)
            let environment = MPIEnvironment(
                requested: threadLevel, provided: MPIThreadLevel(mpiValue: provided) ?? .single,
                world: world, node: node,
                processorName: String(
                    decoding: name.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self),
                ownsInitialization: owns)
            current = environment
            return environment
        }
    }

    /// Whether `finalize()` has run.
    public var isFinalized: Bool { finalized.load(ordering: .acquiring) }

    /// Frees the shared-memory windows (collectively, in creation order) and calls `MPI_Finalize`.
    /// Collective over the world; call it once on every rank after the last collective. Later calls do
    /// nothing.
    public func finalize() throws(CommunicatorError) {
        guard !finalized.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let context = CollectiveContext(operation: "MPIEnvironment.finalize", sequence: 0, rank: world.rank)
        // The watchdog thread makes MPI calls while a watched communicator is open: close them all first.
        try WatchedCommunicator.closeAll()
        try MPISharedWindow.freeAll(context)
        try MPIRuntime.freeWrappingByteSum(context)
        MPIRuntime.isFinalized.store(true, ordering: .releasing)
        if ownsInitialization {
            try MPIRuntime.check(MPI_Finalize(), "MPI_Finalize", context)
        }
    }

    /// Terminates every rank of the job with `code` (`MPI_Abort` on the world communicator). For fatal
    /// errors: a rank that simply exited would leave its peers blocked in their next collective.
    public func abort(code: Int32 = 1) -> Never {
        MPI_Abort(subspace_mpi_comm_world(), code)
        // MPI_Abort does not return; if an implementation ever did, stopping here is still right.
        fatalError("MPI_Abort(\(code)) returned")
    }
}
