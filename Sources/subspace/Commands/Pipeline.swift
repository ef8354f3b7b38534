import ArgumentParser
import Foundation
import SubspaceStudies

/// `subspace pipeline --config configs/pipeline.yaml`, under mpirun: corpus → base → teacher → ΔW SVD →
/// LoRA students → comparison, each stage skipped when its outputs are already there.
struct Pipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the main workflow end to end: base, teacher, ΔW spectrum, LoRA students, comparison report.")

    @Option(help: "Pipeline config (configs/pipeline.yaml).") var config: String = "configs/pipeline.yaml"

    func run() throws {
        let arguments = CommandLine.arguments.dropFirst().map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
        RankedJob.run { job in
            let p = try PipelineConfig.load(path: config)
            let command = "mpirun -np \(job.world.size) subspace \(arguments)"
            let report = try DeltaStudentsPipeline.run(config: p, context: job.studyContext(), command: command)
            job.log("report: \(report)")
        }
    }
}
