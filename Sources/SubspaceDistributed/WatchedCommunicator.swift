import Foundation
import Synchronization

/// Wraps a communicator so that a collective stuck longer than `timeout` is reported — naming the
/// operation, its sequence number on this rank and the ranks that have not reached it — and the whole
/// job is ended instead of hanging.
///
/// Each rank records the sequence number of the collective it is entering in a small file in a folder
/// every rank can see (the run folder), so the rank whose watchdog fires can tell who is behind. A
/// background thread checks once a second.
public final class WatchedCommunicator: Communicator, @unchecked Sendable {
    public let base: any Communicator
    public let timeout: Double
    let folder: String
    let onTimeout: @Sendable (String) -> Void
    private let state = Mutex<(operation: String, sequence: Int, since: UInt64)?>(nil)
    private let sequence = Atomic<Int>(0)
    private let fd: Int32
    private var thread: Thread?

    public var rank: Int { base.rank }
    public var size: Int { base.size }

    /// `onTimeout` receives the report; it should end the job (the default prints and aborts via MPI).
    public init(_ base: any Communicator, timeout: Double, folder: String,
                onTimeout: @escaping @Sendable (String) -> Void = WatchedCommunicator.abortJob) throws {
        self.base = base
        self.timeout = timeout
        self.folder = folder
        self.onTimeout = onTimeout
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        fd = open((folder as NSString).appendingPathComponent("rank-\(base.rank)"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        record(0)
        let t = Thread { [weak self] in
            while let me = self {
                me.check()
                Thread.sleep(forTimeInterval: 1)
            }
        }
        t.stackSize = 1 << 16
        t.start()
        thread = t
    }

    deinit { close(fd) }

    public static let abortJob: @Sendable (String) -> Void = { message in
        FileHandle.standardError.write(Data((message + "\n").utf8))
        if let environment = MPIEnvironment.current { environment.abort(code: 3) }
        exit(3)
    }

    private func record(_ n: Int) {
        var value = Int64(n).littleEndian
        _ = withUnsafeBytes(of: &value) { pwrite(fd, $0.baseAddress, 8, 0) }
    }

    /// Sequence numbers the ranks have entered (nil where unreadable).
    func progress() -> [Int?] {
        (0..<size).map { r in
            guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent("rank-\(r)")),
                  data.count >= 8 else { return nil }
            return Int(Int64(littleEndian: data.withUnsafeBytes { $0.loadUnaligned(as: Int64.self) }))
        }
    }

    func check() {
        guard let current = state.withLock({ $0 }) else { return }
        let waited = Double(DispatchTime.now().uptimeNanoseconds - current.since) * 1e-9
        guard waited > timeout else { return }
        let behind = progress().enumerated().filter { ($0.element ?? -1) < current.sequence }.map { String($0.offset) }
        onTimeout("[rank \(rank)/\(size)] watchdog: collective '\(current.operation)' #\(current.sequence) has waited " +
                  "\(Int(waited)) s (limit \(Int(timeout)) s); ranks that have not reached it: " +
                  (behind.isEmpty ? "none (all arrived; a transport is stuck)" : behind.joined(separator: ", ")))
        state.withLock { $0 = nil }
    }

    private func watch<R>(_ operation: String, _ body: () throws(CommunicatorError) -> R) throws(CommunicatorError) -> R {
        let n = sequence.add(1, ordering: .relaxed).newValue
        record(n)
        state.withLock { $0 = (operation, n, DispatchTime.now().uptimeNanoseconds) }
        defer { state.withLock { $0 = nil } }
        return try body()
    }

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
    public func split(color: Int, key: Int) throws(CommunicatorError) -> any Communicator {
        try watch("split") { () throws(CommunicatorError) in try base.split(color: color, key: key) }
    }
    public func allReduceAlgorithm(forBytes byteCount: Int) -> String { base.allReduceAlgorithm(forBytes: byteCount) }
}
