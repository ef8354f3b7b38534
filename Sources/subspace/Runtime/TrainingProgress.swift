import Foundation
import SubspaceTraining

/// Turns training events into rank 0's progress display and metrics.jsonl.
final class Progress {
    let job: RankedJob
    let totalSteps: Int
    var metrics: MetricsLog?
    /// A live, rewritten progress line only on a real terminal. Under mpirun every rank's stdout is a
    /// pseudo-terminal even when mpirun's own output goes to a file, so there it takes
    /// SUBSPACE_PROGRESS=live to ask for it; otherwise (CI, batch jobs, files) plain lines are printed.
    let interactive: Bool = {
        let env = ProcessInfo.processInfo.environment
        if let mode = env["SUBSPACE_PROGRESS"] { return mode == "live" }
        return isatty(STDOUT_FILENO) != 0 && env["OMPI_COMM_WORLD_SIZE"] == nil
    }()
    let every: Int

    init(job: RankedJob, totalSteps: Int) {
        self.job = job
        self.totalSteps = totalSteps
        every = max(1, totalSteps / 40)
    }

    func handle(_ event: TrainingEvent) {
        guard job.isRoot else { return }
        switch event {
        case .info(let line):
            job.log(line)
        case .step(let m):
            metrics?.append(m)
            let remaining = m.elapsedSeconds / Double(max(m.step, 1)) * Double(totalSteps - m.step)
            let line = String(format: "step %d/%d  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s  ETA %@",
                              m.step, totalSteps, m.loss, m.lr, m.gradNorm, m.tokensPerSecond, Self.duration(remaining) as NSString)
            if interactive {
                print("\r\(job.prefix) \(line)", terminator: m.step == totalSteps ? "\n" : "")
                fflush(nil)
            } else if m.step % every == 0 || m.step == totalSteps || m.step == 1 {
                job.log(line)
            }
        case .evaluation(let e):
            metrics?.append(e)
            if interactive { print("\r", terminator: "") }
            var line = String(format: "eval at step %d: val_loss %.4f  perplexity %.3f", e.step, e.valLoss, e.perplexity)
            if let em = e.exactMatch { line += String(format: "  exact_match %.3f (%d examples)", em, e.exactMatchExamples ?? 0) }
            job.log(line)
        case .checkpoint(let step, let path):
            if interactive { print("\r", terminator: "") }
            job.log("checkpoint at step \(step): \(path)")
        case .interrupted(let step):
            job.log("stopped by SIGTERM at step \(step) after saving a checkpoint")
        }
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
