#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Wraps a communicator so that a collective stuck longer than `timeout` is reported — naming the
/// operation, its sequence number and the ranks that have not reached it — and the job is ended
/// instead of hanging.
///
/// Each rank tells its peers the sequence number of the last collective it entered through a heartbeat
/// channel that needs no shared file system: point-to-point messages on a duplicate of an MPI
/// communicator (`MPIHeartbeat`, which needs `MPI_THREAD_MULTIPLE`) or the group's shared state for
/// in-process ranks. The process's watchdog thread (`Watchdog`) drives the heartbeats and checks the
/// waits. Every rank also sends its value to every peer once per keep-alive period (an eighth of the
/// limit, at least the heartbeat interval), so a rank frozen by SIGSTOP, or a node that hangs, is named
/// as *silent* — even when it froze inside the collective its peers are waiting in, where its sequence
/// number alone would make it look as far along as they are.
///
/// On a timeout the default handler writes the report to stderr and `_exit`s: legal whatever another
/// thread is doing inside MPI (unlike `MPI_Abort` from a second thread), and `mpirun` ends the whole
/// job when a rank dies. Communicators made by `split` are watched too, with the same limit.
///
/// `close()` ends the heartbeats with a goodbye round (collective; itself watched) and releases the
/// duplicate; `MPIEnvironment.finalize` closes whatever is still open.
public final class WatchedCommunicator: Communicator, @unchecked Sendable {
    public let base: any Communicator
    public let timeout: Double
    let onTimeout: @Sendable (String) -> Void
    let heartbeat: (any HeartbeatChannel)?
    /// Why there is no heartbeat channel (ranks behind are then unknown); nil when there is one.
    public let heartbeatMissing: String?
    let watchdog: Watchdog
    private let waiting = Mutex<(operation: String, sequence: Int, since: UInt64)?>(nil)
    private let entered = Atomic<Int>(0)
    private let closing = Atomic<Bool>(false)
    private let drained = Atomic<Bool>(false)
    private let closed = Atomic<Bool>(false)
    /// Seconds between heartbeat exchanges, and when the last one ran (watchdog thread only).
    var heartbeatInterval: Double { min(1, max(Watchdog.pollInterval, timeout / 20)) }
    /// Seconds between values sent even when unchanged; a peer not heard from for `silenceLimit` is
    /// reported as silent (four keep-alive periods: a live rank's late message is not mistaken for it).
    public var keepAliveInterval: Double { max(heartbeatInterval, timeout / 8) }
    public var silenceLimit: Double { 4 * keepAliveInterval }
    private var lastExchange: UInt64 = 0
    private var lastKeepAlive: UInt64 = 0
    /// Set (by the watchdog thread) when a heartbeat call failed; the channel is then left alone.
    private let heartbeatFailure = Mutex<String?>(nil)

    public var rank: Int { base.rank }
    public var size: Int { base.size }

    /// Starts watching `base` (collective over it: an MPI communicator is duplicated for the heartbeats).
    /// Throws if the watchdog thread cannot be started or the duplicate cannot be made. `onTimeout`
    /// receives the report; the default prints it and ends the process.
    public init(_ base: any Communicator, timeout: Double,
                onTimeout: @escaping @Sendable (String) -> Void = WatchedCommunicator.endProcess) throws(CommunicatorError) {
        precondition(timeout > 0, "watchdog timeout \(timeout)")
        self.base = base
        self.timeout = timeout
        self.onTimeout = onTimeout
        watchdog = try Watchdog.running()
        if base.size == 1 {
            (heartbeat, heartbeatMissing) = (nil, nil)
        } else if let local = base as? LocalCommunicator {
            (heartbeat, heartbeatMissing) = (LocalHeartbeat(group: local.group, rank: local.rank), nil)
        } else if let mpi = base as? MPICommunicator {
            let level = MPIEnvironment.current?.providedThreadLevel ?? .single
            if level == .multiple {
                (heartbeat, heartbeatMissing) = (try MPIHeartbeat(mpi), nil)
            } else {
                (heartbeat, heartbeatMissing) = (nil, "heartbeats need MPI_THREAD_MULTIPLE, MPI provided \(level)")
            }
        } else {
            (heartbeat, heartbeatMissing) = (nil, "no heartbeat channel for \(type(of: base))")
        }
        watchdog.register(self)
    }

    /// Writes `message` to stderr and ends the process with status 3 (`mpirun` then ends the job).
    public static let endProcess: @Sendable (String) -> Void = { message in
        let line = Array((message + "\n").utf8)
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        LauncherOutput.waitUntilRead(flushStdio: false)
        _exit(3)
    }

    /// The world ranks behind this communicator's ranks (identity when unknown).
    public var worldRanks: [Int] { heartbeat?.worldRanks ?? Array(0..<size) }

    // MARK: The watchdog thread's side

    /// Heartbeats and the time check; called by the watchdog thread every poll.
    func poll() {
        let isClosing = closing.load(ordering: .acquiring)
        let now = DispatchClock.now
        // Heartbeats every heartbeatInterval (a twentieth of the limit, 50 ms to 1 s): ranks behind are
        // still named from values far fresher than the limit, and a large job sends few messages.
        let due = isClosing || Double(now &- lastExchange) * 1e-9 >= heartbeatInterval
        let keepAlive = Double(now &- lastKeepAlive) * 1e-9 >= keepAliveInterval
        if due { lastExchange = now }
        if due && keepAlive { lastKeepAlive = now }
        if due, let heartbeat, heartbeatFailure.withLock({ $0 == nil }) {
            do {
                if try heartbeat.exchange(entered: entered.load(ordering: .acquiring), closing: isClosing, keepAlive: keepAlive) {
                    drained.store(true, ordering: .releasing)
                }
            } catch {
                heartbeatFailure.withLock { $0 = "\(error)" }
            }
        } else if isClosing {
            drained.store(true, ordering: .releasing)
        }
        guard let current = waiting.withLock({ $0 }) else { return }
        let waited = now > current.since ? Double(now - current.since) * 1e-9 : 0
        guard waited > timeout else { return }
        onTimeout(report(operation: current.operation, sequence: current.sequence, waited: waited))
        waiting.withLock { if $0?.sequence == current.sequence { $0 = nil } }
    }

    /// The message for a collective stuck for `waited` seconds.
    func report(operation: String, sequence: Int, waited: Double) -> String {
        let world = worldRanks
        let me = "[rank \(world[rank])] watchdog: collective '\(operation)' #\(sequence) on a communicator of \(size) rank\(size == 1 ? "" : "s")"
            + " has waited \(Int(waited)) s (limit \(timeout) s); "
        if let failure = heartbeatFailure.withLock({ $0 }) {
            return me + "ranks behind unknown (heartbeats failed: \(failure))"
        }
        guard let heartbeat else {
            return me + "ranks behind unknown (\(heartbeatMissing ?? "one rank"))"
        }
        let now = DispatchClock.now
        let silentFor = heartbeat.lastHeard.map { $0 == .max || $0 >= now ? 0 : Double(now - $0) * 1e-9 }
        return me + Self.whoIsBehind(sequence: sequence, heard: heartbeat.heard, silentFor: silentFor,
                                     silenceLimit: silenceLimit, worldRanks: world)
    }

    /// Names the ranks a collective #`sequence` waits for: first those silent for longer than
    /// `silenceLimit` seconds (stopped, hung, or cut off: the likely cause, wherever they stopped), then
    /// live ranks that have not entered it; if there are none, every rank has entered it and is alive,
    /// so the transport underneath is stuck.
    static func whoIsBehind(sequence: Int, heard: [Int], silentFor: [Double], silenceLimit: Double,
                            worldRanks world: [Int]) -> String {
        func name(_ r: Int) -> String { "\(world[r])" + (world[r] != r ? " (rank \(r) here)" : "") }
        let silent = heard.indices.filter { silentFor[$0] > silenceLimit }
        let behind = heard.indices.filter { heard[$0] < sequence && silentFor[$0] <= silenceLimit }
        var parts: [String] = []
        if !silent.isEmpty {
            parts.append("ranks silent for over \(silenceLimit) s (stopped, hung, or their node unreachable): "
                + silent.map { "\(name($0)) (last heard \(Int(silentFor[$0])) s ago, when it had entered #\(heard[$0]))" }
                    .joined(separator: ", "))
        }
        if !behind.isEmpty {
            parts.append((silent.isEmpty ? "" : "live ") + "ranks that have not reached it: "
                + behind.map { "\(name($0)) (last entered #\(heard[$0]))" }.joined(separator: ", "))
        }
        return parts.isEmpty ? "every rank has reached it and is alive (a transport is stuck)" : parts.joined(separator: "; ")
    }

    // MARK: Watching

    private func watch<R>(_ operation: String, _ body: () throws(CommunicatorError) -> R) throws(CommunicatorError) -> R {
        precondition(!closed.load(ordering: .relaxed), "\(operation) on a closed WatchedCommunicator")
        let n = entered.add(1, ordering: .acquiringAndReleasing).newValue
        waiting.withLock { $0 = (operation, n, DispatchClock.now) }
        defer { waiting.withLock { $0 = nil } }
        return try body()
    }

    /// Ends the heartbeats (a goodbye round with every peer, watched like a collective) and releases the
    /// channel. Collective; later calls do nothing.
    public func close() throws(CommunicatorError) {
        guard beginClose() else { return }
        try endClose()
    }

    /// Starts the goodbye round; false if closing had already begun.
    func beginClose() -> Bool {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        let n = entered.add(1, ordering: .acquiringAndReleasing).newValue
        waiting.withLock { $0 = ("close (watchdog goodbye)", n, DispatchClock.now) }
        closing.store(true, ordering: .releasing)
        return true
    }

    /// Waits for the goodbye round, then takes the communicator off the watchdog and frees the channel.
    func endClose() throws(CommunicatorError) {
        while !drained.load(ordering: .acquiring) && heartbeatFailure.withLock({ $0 == nil }) {
            usleep(1000)
        }
        waiting.withLock { $0 = nil }
        watchdog.deregister(self)
        if let failure = heartbeatFailure.withLock({ $0 }) {
            throw CommunicatorError(operation: "watchdog close", sequence: entered.load(ordering: .relaxed), rank: rank,
                                    reason: .invalidArgument("heartbeats failed: \(failure)"))
        }
        try heartbeat?.release()
    }

    /// Closes every watched communicator still open, goodbye rounds first so that no order of closing
    /// across ranks can deadlock. For `MPIEnvironment.finalize`.
    static func closeAll() throws(CommunicatorError) {
        guard let watchdog = Watchdog.current else { return }
        let open = watchdog.registered.filter { $0.beginClose() }
        for communicator in open { try communicator.endClose() }
    }

    // MARK: Communicator

    public func allReduce<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws(CommunicatorError) {
        try watch("allReduce") { () throws(CommunicatorError) in try base.allReduce(buffer, op: op) }
    }
    public func reduceScatter<T: CollectiveElement>(_ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws(CommunicatorError) {
        try watch("reduceScatter") { () throws(CommunicatorError) in try base.reduceScatter(input, counts: counts, output: output, op: op) }
    }
    public func allGather<T: CollectiveElement>(_ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>) throws(CommunicatorError) {
        try watch("allGather") { () throws(CommunicatorError) in try base.allGather(input, counts: counts, output: output) }
    }
    public func broadcast<T: CollectiveElement>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws(CommunicatorError) {
        try watch("broadcast") { () throws(CommunicatorError) in try base.broadcast(buffer, root: root) }
    }
    public func gather<T: CollectiveElement>(_ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>?, root: Int) throws(CommunicatorError) {
        try watch("gather") { () throws(CommunicatorError) in try base.gather(input, counts: counts, output: output, root: root) }
    }
    public func barrier() throws(CommunicatorError) {
        try watch("barrier") { () throws(CommunicatorError) in try base.barrier() }
    }
    /// The new communicator is watched too, with the same limit and handler.
    public func split(color: Int, key: Int) throws(CommunicatorError) -> any Communicator {
        let new = try watch("split") { () throws(CommunicatorError) in try base.split(color: color, key: key) }
        return try WatchedCommunicator(new, timeout: timeout, onTimeout: onTimeout)
    }
    /// Closes the heartbeats, then frees the communicator underneath. Collective.
    public func free() throws(CommunicatorError) {
        try close()
        try base.free()
    }
    public func allReduceAlgorithm(forBytes byteCount: Int) -> String { base.allReduceAlgorithm(forBytes: byteCount) }
}

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`), without Foundation.
enum DispatchClock {
    static var now: UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}
