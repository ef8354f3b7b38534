import ArgumentParser
import Foundation
import SubspaceDistributed
import SubspaceTraining
import SubspaceStudies

/// `subspace qk-freeze --config configs/qk-freeze.yaml [--set …] [--only MODE]`, under mpirun: the Q/K
/// freeze study. The world is split into one group per mode (standard, ortho, ortho-frozen), each
/// training data-parallel on its own ranks; results.json, report.md and report.html go to run.output.
struct QKFreeze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qk-freeze",
        abstract: "The Q/K freeze study: standard vs orthogonal vs orthogonal-and-frozen W_q, W_k, side by side on split communicators.",
        discussion: """
            With at least as many ranks as modes, the groups run at once, each on world size / modes ranks; \
            with fewer, one after another on every rank (so each group's tokens/s is measured on the same \
            resources). Each run writes <run.output>/<mode>/seed-<s>/ (metrics.jsonl, config.resolved.yaml, \
            checkpoints/, final/); world rank 0 writes results.json, report.md and report.html into \
            run.output and prints the verdict on the seed's four hypotheses.
            """)

    @Option(help: ArgumentHelp("Study config: training sections plus a `study:` section (configs/qk-freeze.yaml).", valueName: "file"))
    var config: String
    @Option(name: .customLong("set"), help: "Override a key, e.g. --set training.steps=100 or --set 'study.seeds=[1, 2, 3]' (repeatable).")
    var overrides: [String] = []
    @Option(help: "Run this mode only (standard, ortho or ortho-frozen): the same as --set study.modes=[MODE].")
    var only: QKFreezeMode?

    func run() throws {
        let arguments = CommandLine.arguments.dropFirst().map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
        RankedJob.run { job in
            var overrides = self.overrides
            if let only { overrides.append("study.modes=[\(only.rawValue)]") }
            let config = try QKFreezeStudyConfig.load(path: self.config, overrides: overrides)
            try config.train.validateFiles(file: self.config)
            let command = "mpirun -np \(job.world.size) subspace \(arguments)"
            let progress = StudyProgress(job: job, totalSteps: config.train.training.steps)
            // The world and every group split from it are watched (faults.watchdog_seconds).
            let world = try job.watchedWorld(seconds: config.train.faults.watchdogSeconds)
            let study = try QKFreezeStudy(config: config, world: world, command: command) { progress.handle($0) }
            if let results = try study.run() {
                job.log("verdict:\n" + StudyProgress.verdictTable(results))
            }
        }
    }
}

/// Prints a study's events: the plan and the files on world rank 0, each group's progress on its own
/// rank 0 (tagged with the mode and seed, since groups run side by side).
final class StudyProgress {
    let job: RankedJob
    let totalSteps: Int
    let every: Int

    init(job: RankedJob, totalSteps: Int) {
        self.job = job
        self.totalSteps = totalSteps
        every = max(1, totalSteps / 10)
    }

    func handle(_ event: StudyEvent) {
        switch event {
        case .plan(let plan):
            job.log("qk-freeze: \(plan.summary)")
            for (i, wave) in plan.waves.enumerated() {
                let slots = wave.enumerated().map { slot, run in
                    let ranks = plan.ranks(ofSlot: slot)
                    return "\(run) on rank\(ranks.count == 1 ? " \(ranks.lowerBound)" : "s \(ranks.lowerBound)–\(ranks.upperBound - 1)")"
                }
                job.log("  wave \(i + 1): " + slots.joined(separator: "; "))
            }
        case .started(let run, _, let output):
            job.log("[\(run)] started → \(output)", everyRank: true)
        case .training(let run, let event):
            switch event {
            case .info(let line):
                job.log("[\(run)] \(line)", everyRank: true)
            case .step(let m) where m.step == 1 || m.step % every == 0 || m.step == totalSteps:
                job.log("[\(run)] " + String(format: "step %d/%d  loss %.4f  lr %.2e  %.0f tok/s", m.step, totalSteps, m.loss, m.lr, m.tokensPerSecond),
                        everyRank: true)
            case .evaluation(let e):
                job.log("[\(run)] " + String(format: "eval at step %d: val_loss %.4f  perplexity %.3f", e.step, e.valLoss, e.perplexity),
                        everyRank: true)
            case .interrupted(let step):
                job.log("[\(run)] stopped by SIGTERM at step \(step)", everyRank: true)
            default:
                break
            }
        case .finished(let g):
            let freeze = g.freeze.passed ? "frozen tensors unchanged (\(g.freeze.frozenTensors))" : "FREEZE CHECK FAILED: \(g.freeze.changed + g.freeze.unchangedTrainable)"
            let perplexity = g.finalPerplexity.map { String(format: "%.3f", $0) } ?? "–"
            job.log("[\(g.mode.rawValue) seed \(g.seed)] " + String(format: "done in %.1f s: ", g.wallSeconds) + "final perplexity \(perplexity), "
                    + String(format: "%.0f tok/s, ", g.tokensPerSecond) + "trainable \(g.parameters.trainable) of \(g.parameters.total); \(freeze)", everyRank: true)
        case .wrote(let paths):
            job.log("wrote " + paths.joined(separator: ", "))
        }
    }

    /// The verdict as a plain-text table.
    static func verdictTable(_ r: StudyResults) -> String {
        let rows = [["", "hypothesis", "measured", "threshold", "verdict"]] + r.verdict.map { [$0.id, $0.claim, $0.measured, $0.threshold, $0.verdict] }
        let widths = (0..<5).map { c in rows.map { $0[c].count }.max()! }
        return rows.map { row in
            row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
