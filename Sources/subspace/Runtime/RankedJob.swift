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
            // Multiple: the watchdog thread exchanges heartbeats (MPI_Isend/Irecv/Test on its own duplicate
            // communicator) while the main or the trainer's communication thread is inside a collective;
            // under SERIALIZED that would be illegal. Open MPI 4.1 provides it; its cost is not measured yet:
            // compare `bench allreduce` with SUBSPACE_MPI_THREAD_LEVEL=serialized.
            // SUBSPACE_MPI_THREAD_LEVEL=serialized asks for less (an MPI without MULTIPLE, or to measure it):
            // the watchdog then still fires, without naming the ranks behind.
            environment = try MPIEnvironment.initialize(threadLevel: threadLevel)
        } catch {
            FileHandle.standardError.write(Data("[rank ?] cannot start MPI: \(error)\n".utf8))
            exit(1)
        }
        let job = RankedJob(environment: environment)
        let policy = ThreadPolicy.decide()
        Parallel.configure(threads: policy.threads)
        job.log("\(policy) on \(environment.processorName)", everyRank: true)
        if let warning = policy.warning { job.log("warning: \(warning)") }
        do {
            try body(job)
            try environment.finalize()
            exit(0)
        } catch {
            job.fail(error)
        }
    }

    /// The world behind the collective watchdog: a collective that waits longer than `seconds` (default:
    /// `$SUBSPACE_WATCHDOG_SECONDS`, else 300) is reported on stderr — its name, sequence number and the
    /// ranks that have not reached it — and the job ends. Communicators split from it are watched too.
    /// Every command that runs collectives runs them on this. Collective; call once per command.
    func watchedWorld(seconds: Double? = nil) throws -> WatchedCommunicator {
        let fallback = ProcessInfo.processInfo.environment["SUBSPACE_WATCHDOG_SECONDS"].flatMap(Double.init) ?? 300
        let watched = try WatchedCommunicator(world, timeout: seconds ?? fallback)
        if let missing = watched.heartbeatMissing { log("watchdog: \(missing); a stuck collective is still reported, without the ranks behind", everyRank: true) }
        return watched
    }

    /// The thread level commands ask MPI for: MULTIPLE, or `$SUBSPACE_MPI_THREAD_LEVEL` (single, funneled,
    /// serialized, multiple).
    static var threadLevel: MPIThreadLevel {
        let asked = ProcessInfo.processInfo.environment["SUBSPACE_MPI_THREAD_LEVEL"]?.lowercased() ?? "-"
        return MPIThreadLevel.allCases.first { "\($0)".lowercased().hasSuffix(asked) } ?? .multiple
    }

    /// A line on stdout, from rank 0 only unless `everyRank`.
    func log(_ message: String, everyRank: Bool = false) {
        guard everyRank || isRoot else { return }
        print("\(prefix) \(message)")
        fflush(nil)  // all streams: lines from different ranks interleave whole
    }

    /// The error as one line: Foundation's file-system errors as "path: reason" instead of their
    /// domain, code and user-info dump; everything else as it describes itself.
    static func describe(_ error: any Error) -> String {
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return "\(error)" }
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        return (path.map { "\($0): " } ?? "") + FileSystemMessage.reason(error)
    }

    /// Prints the error naming this rank and ends the whole job.
    func fail(_ error: any Error) -> Never {
        FileHandle.standardError.write(Data("\(prefix) error: \(Self.describe(error))\n".utf8))
        LauncherOutput.waitUntilRead()  // the launcher reads the reason before the abort tears the job down
        if world.size > 1 { environment.abort(code: 1) }
        exit(1)
    }
}

extension RankedJob {
    /// The context a study runs in: rank 0's log lines, a progress display per training run.
    /// Runs on the watched world (`watchedWorld(seconds:)`, default limit), so a study's collectives and
    /// those of every communicator it splits off are watched; a watchdog that cannot start ends the job.
    func studyContext(watchdogSeconds: Double? = nil) -> StudyContext {
        let world: any Communicator
        do { world = try watchedWorld(seconds: watchdogSeconds) } catch { fail(error) }
        return StudyContext(world: world,
                     log: { line in self.log(line) },
                     trainingDisplay: { _, totalSteps in
                         let progress = Progress(job: self, totalSteps: totalSteps)
                         return { progress.handle($0) }
                     })
    }
}
