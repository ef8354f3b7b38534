/// A group of ranks that run collectives together.
///
/// Contract shared by every implementation:
/// - Every rank of the communicator calls the same collectives in the same order, with the same
///   element type, operation, counts and root; a collective returns on a rank only once that rank's part
///   is complete. Collectives on one communicator must not be called from two threads at once.
/// - Arguments are validated on each rank before any communication, and a violation throws
///   `CommunicatorError.Reason.invalidArgument` naming the problem instead of trapping.
/// - Input and output buffers of one call must not overlap.
/// - Each call, including one that fails validation, takes the next sequence number, so errors on
///   different ranks name the same call.
/// - Sum reductions combine contributions in rank order (0, 1, …, n−1) where the implementation controls
///   the order, so every rank receives bit-identical results.
public protocol Communicator: AnyObject, Sendable {
    /// This rank's index, `0..<size`.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }

    /// Reduces `buffer` element-wise across all ranks, in place; every rank passes the same count and
    /// receives the same result.
    func allReduce<T: CollectiveElement>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp
    ) throws(CommunicatorError)

    /// Reduces `input` (`counts.reduce(0, +)` elements on every rank) element-wise across ranks and leaves
    /// the reduced elements `offset(rank) ..< offset(rank) + counts[rank]` in `output`, which holds
    /// exactly `counts[rank]` elements. `counts` is the same on every rank and may be uneven or contain
    /// zeros.
    func reduceScatter<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>,
        op: ReduceOp
    ) throws(CommunicatorError)

    /// Concatenates every rank's `input` (`counts[r]` elements on rank r) in rank order into `output`
    /// (`counts.reduce(0, +)` elements) on every rank.
    func allGather<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>
    ) throws(CommunicatorError)

    /// Copies `root`'s `buffer` into every other rank's `buffer`; all ranks pass the same count.
    func broadcast<T: CollectiveElement>(
        _ buffer: UnsafeMutableBufferPointer<T>, root: Int
    ) throws(CommunicatorError)

    /// Concatenates every rank's `input` (`counts[r]` elements on rank r) in rank order into `output` on
    /// `root` only. `output` must hold `counts.reduce(0, +)` elements on `root`; other ranks may pass nil
    /// (anything they pass is ignored).
    func gather<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>?,
        root: Int
    ) throws(CommunicatorError)

    /// Returns once every rank has called it.
    func barrier() throws(CommunicatorError)

    /// Partitions the ranks like `MPI_Comm_split`: ranks passing the same `color` (≥ 0) form one new
    /// communicator, ordered by `key` and then by rank in this communicator. Collective over this
    /// communicator.
    func split(color: Int, key: Int) throws(CommunicatorError) -> any Communicator

    /// The name of the algorithm `allReduce` uses for a buffer of `byteCount` bytes (e.g. "mpi", "shm",
    /// "local"), for logs and benchmarks. Local and cheap; performs no communication.
    func allReduceAlgorithm(forBytes byteCount: Int) -> String

    /// Releases what this communicator holds in the MPI library (a split communicator, its shared-memory
    /// window). Collective; no call may follow on this communicator. The world is never freed this way.
    func free() throws(CommunicatorError)
}

extension Communicator {
    /// Nothing to release (in-process communicators).
    public func free() throws(CommunicatorError) {}
}
