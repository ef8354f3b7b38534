import Foundation
import SubspaceTraining

/// The ΔW study (`../shared/seeds/svd-guided-lora-init.md`) end to end: corpus → base → teacher SFT → ΔW
/// spectrum and rank-R factors → LoRA students (random, svd-delta, PiSSA; optional LR sweep and rank
/// study) → comparison report. Each stage is skipped when its outputs exist with the same lineage.
///
/// Collective over `context.world`: every rank calls `run`.
public enum DeltaStudentsPipeline {
    /// Runs every stage; returns the path of the comparison's report.html.
    @discardableResult
    public static func run(config p: PipelineConfig, context: StudyContext) throws -> String {
        let stages = PipelineStages(config: p, context: context)
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
                        let loss = try stages.finalValidationLoss(run)
                        if best == nil || (loss.isFinite && !(best!.1 <= loss)) { best = (run, loss) }
                    }
                    context.say("\(label): best learning rate by final validation loss: \(best!.0)")
                    students.append((label, best!.0))
                }
            }
        }
        let report = try stages.compare(base: baseModel, teacher: teacher.folder, students: students, analysis: analysis.folder)
        context.say(String(format: "pipeline finished in %.0f s on %d ranks", Date().timeIntervalSince(started), context.world.size))
        return report
    }
}
