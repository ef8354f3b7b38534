/// The one error type every collective throws.
///
/// It names the operation, the collective's sequence number on its communicator (1 for the first
/// collective called on it; environment operations such as `MPI_Init_thread` use 0) and the rank that
/// raised it, so a log line from any rank identifies which call went wrong.
public struct CommunicatorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why the operation failed.
    public enum Reason: Sendable, Equatable {
        /// The caller's arguments were wrong on this rank (counts, buffer sizes, root). Detected before any
        /// communication, so every rank that passes the same arguments fails the same way.
        case invalidArgument(String)
        /// A rank waited longer than the communicator's timeout for its peers (in-process ranks only).
        case timedOut(seconds: Double)
        /// The ranks disagree about the collective: a different operation, element type, count or root,
        /// or a peer that returned without calling it.
        case mismatch(String)
        /// Another rank failed, so this collective was abandoned.
        case peerFailed(String)
        /// An MPI call returned an error code; `message` is `MPI_Error_string`'s text.
        case mpi(call: String, code: Int32, message: String)
    }

    /// The operation that failed, e.g. `allReduce` or `MPI_Init_thread`.
    public var operation: String
    /// The collective's sequence number on its communicator (1-based); 0 for environment operations.
    public var sequence: Int
    /// The rank (in the communicator the operation ran on) that raised the error.
    public var rank: Int
    public var reason: Reason

    public init(operation: String, sequence: Int, rank: Int, reason: Reason) {
        self.operation = operation
        self.sequence = sequence
        self.rank = rank
        self.reason = reason
    }

    public var description: String {
        let prefix = "\(operation) #\(sequence) on rank \(rank)"
        switch reason {
        case .invalidArgument(let text):
            return "\(prefix): invalid argument: \(text)"
        case .timedOut(let seconds):
            return "\(prefix): timed out after \(seconds) s waiting for the other ranks"
        case .mismatch(let text):
            return "\(prefix): ranks disagree: \(text)"
        case .peerFailed(let text):
            return "\(prefix): abandoned because another rank failed: \(text)"
        case .mpi(let call, let code, let message):
            return "\(prefix): \(call) failed with code \(code): \(message)"
        }
    }
}

/// Identifies one collective call so that its errors can name it.
struct CollectiveContext: Sendable {
    let operation: String
    let sequence: Int
    let rank: Int

    func error(_ reason: CommunicatorError.Reason) -> CommunicatorError {
        CommunicatorError(operation: operation, sequence: sequence, rank: rank, reason: reason)
    }

    func invalid(_ text: String) -> CommunicatorError {
        error(.invalidArgument(text))
    }
}
