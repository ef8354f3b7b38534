import Foundation
import Synchronization

/// State shared by all in-process ranks of one `LocalCluster.run`: one lock and condition for every
/// group (sub-communicators included), the first failure, and which ranks have finished.
///
/// `@unchecked Sendable`: every mutable property is read and written only while `condition` is locked.
final class LocalClusterState: @unchecked Sendable {
    let condition = NSCondition()
    let timeout: Double
    /// The first error a rank's body threw; waiting ranks give up once it is set.
    var failure: (rank: Int, error: any Error)?
    /// Cluster ranks whose body has returned; a group waiting on one of them can never complete.
    var finished: Set<Int> = []

    init(timeout: Double) {
        self.timeout = timeout
    }

    /// Records that cluster rank `rank` ended, with `error` if it threw, and wakes every waiter.
    func finish(rank: Int, error: (any Error)?) {
        condition.lock()
        defer { condition.unlock() }
        finished.insert(rank)
        if let error, failure == nil || Self.isSecondary(failure!.error) && !Self.isSecondary(error) {
            failure = (rank, error)
        }
        condition.broadcast()
    }

    /// Errors that are consequences of another rank's failure rather than causes.
    static func isSecondary(_ error: any Error) -> Bool {
        guard let error = error as? CommunicatorError else { return false }
        if case .peerFailed = error.reason { return true }
        return false
    }
}

/// What one rank contributes to a collective: enough for every peer to check that the ranks agree and
/// to read this rank's buffers while all ranks are inside the collective.
struct LocalSlot {
    var operation: String
    var sequence: Int
    var kind: CollectiveElementKind?
    var op: ReduceOp?
    var count = 0
    var counts: [Int] = []
    var root = 0
    var color = 0
    var key = 0
    /// This rank's input (valid until the collective's closing barrier).
    var input: UnsafeRawPointer?
}

/// The shared state of one in-process communicator: a reusable barrier whose arrivals publish slots.
///
/// `@unchecked Sendable`: every mutable property is guarded by `cluster.condition`, and the raw
/// pointers in slots are only dereferenced between the two barriers that bracket a collective, while
/// their owners are blocked inside it.
final class LocalGroup: @unchecked Sendable {
    let cluster: LocalClusterState
    /// The cluster rank of each rank of this group.
    let members: [Int]
    var size: Int { members.count }
    /// Each rank's last entered collective as a `WatchedCommunicator` publishes it (see `LocalHeartbeat`).
    let heartbeats: Mutex<[Int]>

    private var arrived = 0
    private var generation = 0
    private var slots: [LocalSlot?]
    /// The slots as they were when the last barrier completed; stable until the next one completes,
    /// which needs every rank, so a slow rank reads what its peers published for this collective.
    private var completedSlots: [LocalSlot?]
    /// Sub-groups being created by `split`, keyed by the split's sequence number and colour; removed
    /// once every member has picked its group up.
    private var pendingSplits: [SplitKey: (group: LocalGroup, remaining: Int)] = [:]

    struct SplitKey: Hashable {
        let sequence: Int
        let color: Int
    }

    init(cluster: LocalClusterState, members: [Int]) {
        self.cluster = cluster
        self.members = members
        self.slots = Array(repeating: nil, count: members.count)
        self.completedSlots = slots
        self.heartbeats = Mutex(Array(repeating: 0, count: members.count))
    }

    /// Publishes `slot` (if any) for `rank` and blocks until every rank of the group has arrived; returns
    /// the slots published for this barrier.
    ///
    /// Throws `timedOut` after the cluster's timeout, `peerFailed` once another rank's body threw, and
    /// `mismatch` if a member returned from its body without arriving.
    func arrive(rank: Int, slot: LocalSlot?, context: CollectiveContext) throws(CommunicatorError)
        -> [LocalSlot?]
    {
        let condition = cluster.condition
        condition.lock()
        defer { condition.unlock() }
        if let failure = cluster.failure {
            throw context.error(.peerFailed("rank \(failure.rank): \(failure.error)"))
        }
        if let slot { slots[rank] = slot }
        let myGeneration = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation &+= 1
            completedSlots = slots
            condition.broadcast()
            return completedSlots
        }
        let deadline = Date(timeIntervalSinceNow: cluster.timeout)
        while generation == myGeneration {
            if let failure = cluster.failure {
                throw context.error(.peerFailed("rank \(failure.rank): \(failure.error)"))
            }
            if let gone = members.firstIndex(where: { cluster.finished.contains($0) }) {
                throw context.error(
                    .mismatch("rank \(gone) returned without calling \(context.operation)"))
            }
            if !condition.wait(until: deadline), generation == myGeneration {
                throw context.error(.timedOut(seconds: cluster.timeout))
            }
        }
        return completedSlots
    }

    /// Returns the sub-group for colour `key.color` of the split numbered `key.sequence`, creating it
    /// (with `members`, cluster ranks in new-rank order) on the first call of its members.
    func subgroup(for key: SplitKey, members: [Int]) -> LocalGroup {
        let condition = cluster.condition
        condition.lock()
        defer { condition.unlock() }
        var entry = pendingSplits[key] ?? (LocalGroup(cluster: cluster, members: members), members.count)
        entry.remaining -= 1
        pendingSplits[key] = entry.remaining == 0 ? nil : entry
        return entry.group
    }
}
