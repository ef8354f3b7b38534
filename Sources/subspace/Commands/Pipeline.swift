import ArgumentParser
import Foundation
import SubspaceTraining

/// `subspace pipeline --config configs/pipeline.yaml`, under mpirun: corpus → base → teacher → ΔW SVD →
/// LoRA students → comparison, each stage skipped when its outputs are already there.
struct Pipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the main workflow end to end: base, teacher, ΔW spectrum, LoRA students, comparison report.")

    @Option(help: "Pipeline config (configs/pipeline.yaml).") var config: String = "configs/pipeline.yaml"

    func run() throws {
        RankedJob.run { job in
            let p = try PipelineConfig.load(path: config)
            let stages = PipelineStages(config: p, job: job)
            let started = Date()
            try stages.corpus()
            try stages.sftData()
            let base = try stages.train("base", p.base, extra: ["data.kind=corpus", "data.path=\(p.corpusShards)"])
            let baseModel = (base.folder as NSString).appendingPathComponent("final")
            let sft = ["data.kind=sft", "data.path=\(p.sftPath)", "model.source=hf", "model.path=\(baseModel)"]
            let teacher = try stages.train("teacher", p.teacher, extra: sft, after: [base])
            let analysis = try stages.analysis(base: base, teacher: teacher)
            var students: [(String, String)] = []
            // A rank study trains every initialisation at every rank; names carry the rank then.
            let ranks: [Int?] = p.ranks.isEmpty ? [nil] : p.ranks.map { $0 }
            for rank in ranks {
                for initialisation in p.initialisations {
                    let name = "student-\(initialisation)" + (rank.map { "-r\($0)" } ?? "")
                    let extra = sft + ["lora.initialisation=\(initialisation)"] + (rank.map { ["lora.rank=\($0)", "lora.alpha=\(2 * $0)"] } ?? [])
                        + (initialisation == "svd-delta" ? ["lora.factors=\((analysis.folder as NSString).appendingPathComponent("factors.safetensors"))"] : [])
                    let label = initialisation + (rank.map { " r\($0)" } ?? "")
                    if p.learningRates.isEmpty {
                        students.append((label, try stages.train(name, p.students, extra: extra, after: [base, analysis]).folder))
                    } else {
                        // A sweep: each rate trains; the best final validation loss represents the initialisation.
                        var best: (String, Double)? = nil
                        for lr in p.learningRates {
                            let run = try stages.train("\(name)-lr\(lr)", p.students,
                                                       extra: extra + ["training.learning_rate=\(lr)", "training.min_learning_rate=\(lr / 10)"],
                                                       after: [base, analysis]).folder
                            let loss = PipelineStages.finalValidationLoss(run) ?? .infinity
                            if best == nil || loss < best!.1 { best = (run, loss) }
                        }
                        job.log("\(label): best learning rate by final validation loss: \(best!.0)")
                        students.append((label, best!.0))
                    }
                }
            }
            let report = try stages.compare(base: baseModel, teacher: teacher.folder, students: students, analysis: analysis.folder)
            job.log(String(format: "pipeline finished in %.0f s on %d ranks", Date().timeIntervalSince(started), job.world.size))
            job.log("report: \(report)")
        }
    }
}
