import ArgumentParser
import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceTraining

/// `subspace train --config FILE [--set key=value …]`, run under mpirun: data-parallel training with
/// ZeRO, checkpoints and resume; writes metrics.jsonl, checkpoints/ and final/ into `run.output`.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train (pretrain, full fine-tune or LoRA) from a YAML config; run under mpirun for data parallelism.")

    @Option(help: "YAML config (see configs/README.md).") var config: String
    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set training.steps=100 (repeatable).")
    var overrides: [String] = []

    func run() throws {
        RankedJob.run { job in
            let config = try TrainConfig.load(path: self.config, overrides: overrides)
            try config.validate(worldSize: job.world.size)
            try config.validateFiles()
            let output = config.run.output
            // Rank 0 checks the folder and holds its lock for the run's life; nothing else is written into
            // it until every check has passed (a failure on rank 0 ends the whole job).
            let folder = job.isRoot ? try RunFolder(config: config) : nil
            for note in folder?.notes ?? [] { job.log(note) }
            try job.world.barrier()
            let progress = Progress(job: job, totalSteps: config.training.steps)
            // A collective stuck past faults.watchdog_seconds is reported with the ranks behind, and the job ends.
            let world = try job.watchedWorld(seconds: config.faults.watchdogSeconds)
            let trainer = try Trainer(config: config, communicator: world, report: { progress.handle($0) })
            let start = try trainer.checkResume()
            try folder?.commit(config: config, lineage: trainer.lineage, start: start)
            try job.world.barrier()
            if job.isRoot { progress.metrics = try MetricsLog(folder: output, resumeStep: start) }
            let reached = try trainer.run()
            if reached == config.training.steps {
                let final = (output as NSString).appendingPathComponent("final")
                try trainer.exportFinal(to: final)
                job.log("final \(config.lora == nil ? "model" : "adapter"): \(final)"
                        + (config.lora != nil && config.model.source == .new ? " (with its freshly initialised base in \(final)/base)" : ""))
            }
            folder?.release()
        }
    }
}
