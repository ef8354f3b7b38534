import CMPI
import Synchronization

/// How a watched communicator learns how far its peers have got, without a shared file system: each
/// rank publishes the sequence number of the last collective it entered, and hears its peers'. When
/// each rank was last heard from tells a live peer from a stopped one: a rank frozen inside a
/// collective it has entered looks, by its sequence number alone, like every other rank there.
///
/// Driven only by the watchdog thread (`exchange`), except `release`, which the owner calls once the
/// channel has drained and has been taken off the watchdog's list.
protocol HeartbeatChannel: AnyObject, Sendable {
    /// The ranks of the world (or of the in-process cluster) behind this communicator's ranks, for
    /// messages that name ranks a user can find.
    var worldRanks: [Int] { get }
    /// Publishes `entered` (this rank's last entered collective) and takes in what peers published.
    /// A value is sent when it changed, or with `keepAlive` even if not (so that silence means a stopped
    /// rank, not an idle one). With `closing`, sends a final goodbye instead; returns true once the
    /// goodbye round is complete (every peer's goodbye received and this rank's sent), after which
    /// nothing is in flight.
    func exchange(entered: Int, closing: Bool, keepAlive: Bool) throws(CommunicatorError) -> Bool
    /// The last sequence number heard from each rank (this rank's own included); 0 before any.
    var heard: [Int] { get }
    /// When each rank was last heard from (`DispatchClock` nanoseconds; this rank's own: its last
    /// exchange; the channel's creation before any message). `UInt64.max` for a rank that has said
    /// goodbye: it is closing, not silent.
    var lastHeard: [UInt64] { get }
    /// Frees the channel's resources. Called once, after `exchange` returned true.
    func release() throws(CommunicatorError)
}

/// In-process ranks (`LocalCommunicator`): a board in the group's shared state.
final class LocalHeartbeat: HeartbeatChannel {
    let group: LocalGroup
    let rank: Int
    var worldRanks: [Int] { group.members }

    init(group: LocalGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    func exchange(entered: Int, closing: Bool, keepAlive: Bool) throws(CommunicatorError) -> Bool {
        group.heartbeats.withLock { $0[rank] = entered }
        return closing
    }

    var heard: [Int] { group.heartbeats.withLock { $0 } }
    /// In-process ranks share the process and its watchdog thread: none can fall silent alone.
    var lastHeard: [UInt64] { Array(repeating: DispatchClock.now, count: group.size) }
    func release() throws(CommunicatorError) {}
}

/// MPI ranks: point-to-point messages on a duplicate of the communicator, so they can never match a
/// collective's. Each rank keeps one receive posted per peer and at most one send in flight per peer
/// (a newer value simply waits for the next round: only the latest matters), so a peer that stops
/// (SIGSTOP, a hung node) costs nothing but a pending request. Messages are [entered, goodbye flag];
/// besides changes, one goes to every peer each keep-alive period (the watched communicator's choice).
///
/// Needs `MPI_THREAD_MULTIPLE`: the watchdog thread calls `MPI_Isend`/`MPI_Irecv`/`MPI_Test` while the
/// main or communication thread is inside a collective on the original communicator.
///
/// `@unchecked Sendable`: the request and buffer arrays are touched only by the watchdog thread (and by
/// `release`, once the watchdog no longer holds the channel); `board` is behind a lock.
final class MPIHeartbeat: HeartbeatChannel, @unchecked Sendable {
    static let tag: Int32 = 7013
    let comm: MPICommHandle
    let rank: Int
    let size: Int
    let worldRanks: [Int]
    private var receives: [MPI_Request?]
    private var sends: [MPI_Request?]
    private let receiveBuffers: UnsafeMutablePointer<Int64>
    private let sendBuffers: UnsafeMutablePointer<Int64>
    private var lastSent: [Int]
    private var goodbyeSent: [Bool]
    private var goodbyeHeard: [Bool]
    /// What was last heard from each rank, and when (see `lastHeard`).
    private let board: Mutex<(values: [Int], at: [UInt64])>

    /// Duplicates `communicator` (collective over it) and posts the first receives.
    init(_ communicator: MPICommunicator) throws(CommunicatorError) {
        let context = CollectiveContext(operation: "watchdog heartbeat set-up", sequence: 0, rank: communicator.rank)
        var dup: MPI_Comm? = subspace_mpi_comm_null()
        try MPIRuntime.check(MPI_Comm_dup(communicator.handle.comm, &dup), "MPI_Comm_dup", context)
        guard let dup else { throw context.invalid("MPI_Comm_dup returned MPI_COMM_NULL") }
        try MPIRuntime.check(MPI_Comm_set_errhandler(dup, subspace_mpi_errors_return()), "MPI_Comm_set_errhandler", context)
        comm = MPICommHandle(dup)
        rank = communicator.rank
        size = communicator.size
        worldRanks = try Self.worldRanks(of: dup, size: size, context)
        receives = Array(repeating: subspace_mpi_request_null(), count: size)
        sends = receives
        receiveBuffers = .allocate(capacity: 2 * size)
        receiveBuffers.initialize(repeating: 0, count: 2 * size)
        sendBuffers = .allocate(capacity: 2 * size)
        sendBuffers.initialize(repeating: 0, count: 2 * size)
        lastSent = Array(repeating: 0, count: size)
        goodbyeSent = Array(repeating: false, count: size)
        goodbyeHeard = Array(repeating: false, count: size)
        goodbyeSent[rank] = true
        goodbyeHeard[rank] = true
        board = Mutex((Array(repeating: 0, count: size), Array(repeating: DispatchClock.now, count: size)))
        for peer in 0..<size where peer != rank { try postReceive(peer, context) }
    }

    /// `MPI_Group_translate_ranks` against the world.
    static func worldRanks(of comm: MPI_Comm, size: Int, _ context: CollectiveContext) throws(CommunicatorError) -> [Int] {
        var group: MPI_Group? = nil, worldGroup: MPI_Group? = nil
        try MPIRuntime.check(MPI_Comm_group(comm, &group), "MPI_Comm_group", context)
        try MPIRuntime.check(MPI_Comm_group(subspace_mpi_comm_world(), &worldGroup), "MPI_Comm_group", context)
        var ranks = (0..<Int32(size)).map { $0 }
        var translated = [Int32](repeating: 0, count: size)
        try MPIRuntime.check(MPI_Group_translate_ranks(group, Int32(size), &ranks, worldGroup, &translated),
                             "MPI_Group_translate_ranks", context)
        try MPIRuntime.check(MPI_Group_free(&group), "MPI_Group_free", context)
        try MPIRuntime.check(MPI_Group_free(&worldGroup), "MPI_Group_free", context)
        return translated.map(Int.init)
    }

    private func postReceive(_ peer: Int, _ context: CollectiveContext) throws(CommunicatorError) {
        try MPIRuntime.check(
            MPI_Irecv(receiveBuffers + 2 * peer, 2, subspace_mpi_int64(), Int32(peer), Self.tag, comm.comm, &receives[peer]),
            "MPI_Irecv", context)
    }

    func exchange(entered: Int, closing: Bool, keepAlive: Bool) throws(CommunicatorError) -> Bool {
        let context = CollectiveContext(operation: "watchdog heartbeat", sequence: entered, rank: rank)
        var flag: Int32 = 0
        var done = true
        let now = DispatchClock.now
        board.withLock { $0.values[rank] = entered; $0.at[rank] = now }
        for peer in 0..<size where peer != rank {
            // Take in everything that has arrived (values from one peer arrive in order).
            while !goodbyeHeard[peer] {
                try MPIRuntime.check(MPI_Test(&receives[peer], &flag, subspace_mpi_status_ignore()), "MPI_Test", context)
                guard flag != 0 else { break }
                let value = Int(receiveBuffers[2 * peer]), goodbye = receiveBuffers[2 * peer + 1] != 0
                board.withLock { $0.values[peer] = max($0.values[peer], value); $0.at[peer] = goodbye ? .max : now }
                if goodbye { goodbyeHeard[peer] = true } else { try postReceive(peer, context) }
            }
            if sends[peer] != subspace_mpi_request_null() {
                try MPIRuntime.check(MPI_Test(&sends[peer], &flag, subspace_mpi_status_ignore()), "MPI_Test", context)
            }
            if sends[peer] == subspace_mpi_request_null() && !goodbyeSent[peer] && (closing || keepAlive || entered != lastSent[peer]) {
                sendBuffers[2 * peer] = Int64(entered)
                sendBuffers[2 * peer + 1] = closing ? 1 : 0
                try MPIRuntime.check(
                    MPI_Isend(sendBuffers + 2 * peer, 2, subspace_mpi_int64(), Int32(peer), Self.tag, comm.comm, &sends[peer]),
                    "MPI_Isend", context)
                lastSent[peer] = entered
                goodbyeSent[peer] = closing
            }
            if !goodbyeHeard[peer] || !goodbyeSent[peer] || sends[peer] != subspace_mpi_request_null() { done = false }
        }
        return closing && done
    }

    var heard: [Int] { board.withLock { $0.values } }
    var lastHeard: [UInt64] { board.withLock { $0.at } }

    func release() throws(CommunicatorError) {
        let context = CollectiveContext(operation: "watchdog heartbeat release", sequence: 0, rank: rank)
        receiveBuffers.deallocate()
        sendBuffers.deallocate()
        var handle: MPI_Comm? = comm.comm
        try MPIRuntime.check(MPI_Comm_free(&handle), "MPI_Comm_free", context)
    }
}
