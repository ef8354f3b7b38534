import Foundation
import Synchronization

/// Runs N in-process ranks on threads, each with its own `LocalCommunicator`, for unit tests of
/// anything built on `Communicator`.
public enum LocalCluster {
    /// How long a rank waits in a collective for its peers before throwing `timedOut`.
    public static let defaultTimeout: Double = 60

    /// Runs `body` once per rank, each on its own thread, and returns the results in rank order.
    ///
    /// If any rank throws, the ranks still waiting in a collective are released with `peerFailed`, every
    /// thread is joined, and the first error that is a cause rather than a consequence is rethrown.
    /// A rank that waits longer than `timeout` seconds in one collective throws `timedOut` naming it.
    public static func run<Result: Sendable>(
        size: Int, timeout: Double = defaultTimeout,
        _ body: @escaping @Sendable (LocalCommunicator) throws -> Result
    ) throws -> [Result] {
        precondition(size >= 1, "a cluster needs at least one rank")
        let state = LocalClusterState(timeout: timeout)
        let world = LocalGroup(cluster: state, members: Array(0..<size))
        let results = Mutex<[Result?]>(Array(repeating: nil, count: size))
        let done = DispatchGroup()
        for rank in 0..<size {
            done.enter()
            let communicator = LocalCommunicator(rank: rank, group: world)
            let thread = Thread {
                defer { done.leave() }
                do {
                    let value = try body(communicator)
                    results.withLock { $0[rank] = value }
                    state.finish(rank: rank, error: nil)
                } catch {
                    state.finish(rank: rank, error: error)
                }
            }
            // Ranks block in collectives, so each needs its own thread; 8 MiB matches a main thread.
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
        state.condition.lock()
        let failure = state.failure
        state.condition.unlock()
        if let failure { throw failure.error }
        return results.withLock { $0.map { $0! } }
    }

    /// Runs `body` once per rank and discards the results; see `run(size:timeout:_:)`.
    public static func run(
        size: Int, timeout: Double = defaultTimeout,
        _ body: @escaping @Sendable (LocalCommunicator) throws -> Void
    ) throws {
        let _: [Void] = try run(size: size, timeout: timeout, body)
    }
}
