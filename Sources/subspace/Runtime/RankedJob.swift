import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceStudies

/// What a multi-rank command needs around its body: MPI, a `[rank r/N]` prefix for messages, BLAS and
/// kernel threads sized for the rank, and a fatal-error path that takes the whole job down so no rank is
/// left waiting in a collective.
struct RankedJob {
    let environment: MPIEnvironment
    var world: MPICommunicator { environment.world }
    var prefix: String { "[rank \(world.rank)/\(world.size)]" }
    var isRoot: Bool { world.rank == 0 }

    /// Initialises MPI and threads, runs `body`, finalises. Any error is printed with the rank prefix on
    /// stderr; with more than one rank the job is aborted (MPI_Abort), otherwise the process exits 1.
    static func run(_ body: (RankedJob) throws -> Void) -> Never {
        let environment: MPIEnvironment
        do {
            // Serialized: the trainer's communication thread makes MPI calls while the main thread computes.
            environment = try MPIEnvironment.initialize(threadLevel: .serialized)
        } catch {
            FileHandle.standardError.write(Data("[rank ?] cannot start MPI: \(error)\n".utf8))
            exit(1)
        }
        let job = RankedJob(environment: environment)
        let policy = ThreadPolicy.decide()
        Parallel.configure(threads: policy.threads)
        job.log("\(policy) on \(environment.processorName)", everyRank: true)
        do {
            try body(job)
            try environment.finalize()
            exit(0)
        } catch {
            job.fail(error)
        }
    }

    /// A line on stdout, from rank 0 only unless `everyRank`.
    func log(_ message: String, everyRank: Bool = false) {
        guard everyRank || isRoot else { return }
        print("\(prefix) \(message)")
        fflush(nil)  // all streams: lines from different ranks interleave whole
    }

    /// Prints the error naming this rank and ends the whole job.
    func fail(_ error: any Error) -> Never {
        FileHandle.standardError.write(Data("\(prefix) error: \(error)\n".utf8))
        if world.size > 1 { environment.abort(code: 1) }
        exit(1)
    }
}

extension RankedJob {
    /// The context a study runs in: rank 0's log lines, a progress display per training run.
    func studyContext() -> StudyContext {
        StudyContext(world: world,
                     log: { line in self.log(line) },
                     trainingDisplay: { _, totalSteps in
                         let progress = Progress(job: self, totalSteps: totalSteps)
                         return { progress.handle($0) }
                     })
    }
}
