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
}
