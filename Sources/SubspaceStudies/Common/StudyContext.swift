import Foundation
import SubspaceDistributed
import SubspaceTraining

/// What a study needs from whoever drives it — the executable, a test, a notebook-like script: the world
/// communicator, a sink for log lines, a display for training runs, and a wrapper for the communicators
/// trainers use (the executable adds the collective watchdog there). Studies never print themselves.
public struct StudyContext {
    public let world: any Communicator
    /// Progress lines; called on rank 0 only, unless a study says otherwise.
    public let log: (String) -> Void
    /// A handler for one training run's events (rank 0's display), given the run's name and total steps.
    public let trainingDisplay: (_ run: String, _ totalSteps: Int) -> (TrainingEvent) -> Void
    /// Wraps a communicator before a trainer uses it; given the run folder.
    public let wrap: (any Communicator, String) throws -> any Communicator

    public var isRoot: Bool { world.rank == 0 }

    public init(world: any Communicator,
                log: @escaping (String) -> Void = { _ in },
                trainingDisplay: @escaping (_ run: String, _ totalSteps: Int) -> (TrainingEvent) -> Void = { _, _ in { _ in } },
                wrap: @escaping (any Communicator, String) throws -> any Communicator = { c, _ in c }) {
        self.world = world
        self.log = log
        self.trainingDisplay = trainingDisplay
        self.wrap = wrap
    }

    /// A line from rank 0.
    public func say(_ line: String) { if isRoot { log(line) } }

    /// Runs `body` (file writes and the like) on rank 0 only and tells every rank whether it failed
    /// (collective: a broadcast, which also holds the other ranks until rank 0 is done), so a failure
    /// ends every rank with an error instead of leaving them waiting at the next collective. Rank 0
    /// throws its own error; the others a `RootStepError` naming `what`.
    public func onRoot(_ what: String, _ body: () throws -> Void) throws {
        var failure: (any Error)? = nil
        if isRoot {
            do { try body() } catch { failure = error }
        }
        var flag: [Int32] = [failure == nil ? 0 : 1]
        try world.broadcast(&flag, root: 0)
        if let failure { throw failure }
        if flag[0] != 0 { throw RootStepError(what: what) }
    }
}

/// A rank-0 step of a study (`StudyContext.onRoot`) failed; rank 0's own error says why.
public struct RootStepError: Error, CustomStringConvertible, Sendable {
    public let what: String
    public var description: String { "\(what) failed on rank 0 (its error says why)" }
}
