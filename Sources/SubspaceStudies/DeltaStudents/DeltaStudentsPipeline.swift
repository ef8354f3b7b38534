import Foundation
import SubspaceAnalysis
import SubspaceTraining

/// The ΔW study (`../shared/seeds/svd-guided-lora-init.md`) end to end: corpus → base → teacher SFT → ΔW
/// spectrum and rank-R factors → LoRA students (random, svd-delta, PiSSA) → comparison.
///
/// Run as a reviewer would accept it: the teacher and every student get the same budget (`budget.steps`,
/// the same data, batch and schedule shape); each method — the teacher included — gets its own
/// learning-rate sweep that extends past an edge of the grid while the best value sits there; every
/// compared run repeats over `seeds`, each seed's students learning from that seed's teacher; an optional
/// rank study trains each initialisation at each rank at its chosen rate, over the seeds. Each stage is
/// skipped when its outputs exist with the same lineage, so a second run is quick.
///
/// Collective over `context.world`: every rank calls `run`.
public enum DeltaStudentsPipeline {
    /// Everything the study ran, for its report.
    public struct Outcome {
        public var teacherSweep: SweepResult
        public var studentSweeps: [SweepResult]
        /// Per seed: the analysis folder and the comparison of that seed's teacher and students.
        public var analyses: [UInt64: String]
        public var comparisons: [UInt64: Comparison]
        /// Rank study: (initialisation, rank, seed) → run folder.
        public var rankRuns: [(initialisation: String, rank: Int, seed: UInt64, folder: String)]
        public var defaultRank: Int
    }

    /// Runs every stage; returns the path of the study's report.html.
    @discardableResult
    public static func run(config p: PipelineConfig, context: StudyContext, command: String? = nil) throws -> String {
        let stages = PipelineStages(config: p, context: context)
        let started = Date()
        try stages.corpus()
        try stages.sftData()
        let base = try stages.train("base", p.base, extra: ["data.kind=corpus", "data.path=\(p.corpusShards)"])
        let sft = ["data.kind=sft", "data.path=\(p.sftPath)", "model.source=hf", "model.path=\(base.final)"]
        let budget = p.budgetSteps.map { ["training.steps=\($0)"] } ?? []
        func rate(_ lr: Double) -> [String] { ["training.learning_rate=\(lr)", "training.min_learning_rate=\(lr / 10)"] }
        func tag(_ lr: Double) -> String { String(format: "%.3g", lr) }

        // The teacher: its own sweep (one point = the config's rate), then every seed at the chosen rate.
        var done: [String: RunStages.Done] = [:]
        let teacherGrid = p.teacherLearningRates.isEmpty ? [try configRate(p.teacher)] : p.teacherLearningRates
        let teacherSweep = try Sweep.run(
            method: "teacher", settings: SweepSettings(learningRates: teacherGrid, maxExtensions: p.teacherLearningRates.count > 1 ? p.maxExtensions : 0,
                                                       seeds: p.seeds)) { lr, seed in
            let run = try stages.train("teacher-lr\(tag(lr))-s\(seed)", p.teacher, extra: sft + budget + rate(lr) + ["run.seed=\(seed)"], after: [base])
            done[run.folder] = run
            return (run.folder, try stages.finalValidationLoss(run.folder))
        }
        context.say("teacher: learning rate \(tag(teacherSweep.bestLearningRate)) (\(teacherSweep.note))")

        // Each seed's ΔW analysis, at the largest rank any student needs.
        var analyses: [UInt64: RunStages.Done] = [:]
        var teachers: [UInt64: RunStages.Done] = [:]
        for run in teacherSweep.seedRuns {
            let teacher = done[run.folder]!
            teachers[run.seed] = teacher
            analyses[run.seed] = try stages.analysis(base: base, teacher: teacher, name: "analysis-s\(run.seed)")
        }

        func studentExtra(_ initialisation: String, seed: UInt64, rank: Int?) -> [String] {
            sft + budget + ["lora.initialisation=\(initialisation)", "run.seed=\(seed)"]
                + (rank.map { ["lora.rank=\($0)", "lora.alpha=\(2 * $0)"] } ?? [])
                + (initialisation == "svd-delta" ? ["lora.factors=\((analyses[seed]!.folder as NSString).appendingPathComponent("factors.safetensors"))"] : [])
        }
        let studentGrid = p.learningRates.isEmpty ? [try configRate(p.students)] : p.learningRates
        var studentSweeps: [SweepResult] = []
        for initialisation in p.initialisations {
            let sweep = try Sweep.run(
                method: initialisation, settings: SweepSettings(learningRates: studentGrid, maxExtensions: p.learningRates.count > 1 ? p.maxExtensions : 0,
                                                                seeds: p.seeds)) { lr, seed in
                let run = try stages.train("student-\(initialisation)-lr\(tag(lr))-s\(seed)", p.students,
                                           extra: studentExtra(initialisation, seed: seed, rank: nil) + rate(lr),
                                           after: [base, teachers[seed]!, analyses[seed]!])
                return (run.folder, try stages.finalValidationLoss(run.folder))
            }
            context.say("\(initialisation): learning rate \(tag(sweep.bestLearningRate)) (\(sweep.note))")
            studentSweeps.append(sweep)
        }

        // Rank study: every initialisation at every rank, at its chosen rate, over the seeds.
        var rankRuns: [(String, Int, UInt64, String)] = []
        for rank in p.ranks {
            for sweep in studentSweeps {
                for seed in p.seeds {
                    let run = try stages.train("rank-r\(rank)-\(sweep.method)-s\(seed)", p.students,
                                               extra: studentExtra(sweep.method, seed: seed, rank: rank) + rate(sweep.bestLearningRate),
                                               after: [base, teachers[seed]!, analyses[seed]!])
                    rankRuns.append((sweep.method, rank, seed, run.folder))
                }
            }
        }

        // Each seed's teacher against its students (losses, exact match, steps to target, ΔW distance).
        var comparisons: [UInt64: Comparison] = [:]
        for seed in p.seeds {
            let students = studentSweeps.map { sweep in (sweep.method, sweep.seedRuns.first { $0.seed == seed }!.folder) }
            let options = ComparisonOptions(base: base.final, teacher: teachers[seed]!.folder,
                                            students: students.map { StudentRun(name: $0.0, folder: $0.1) },
                                            targetLoss: p.targetLoss, analysis: analyses[seed]!.folder)
            comparisons[seed] = try RunComparison.run(options, output: stages.path("report", "seed-\(seed)"), communicator: context.world).comparison
        }
        let outcome = Outcome(teacherSweep: teacherSweep, studentSweeps: studentSweeps,
                              analyses: analyses.mapValues(\.folder), comparisons: comparisons,
                              rankRuns: rankRuns.map { ($0.0, $0.1, $0.2, $0.3) }, defaultRank: try configRank(p.students))
        var report = stages.path("report", "report.html")
        try context.onRoot("writing the pipeline report") {
            report = try DeltaStudentsReport.write(outcome, config: p, folder: stages.path("report"), command: command)
            context.say(String(format: "pipeline finished in %.0f s on %d ranks", Date().timeIntervalSince(started), context.world.size))
        }
        return report
    }

    /// The learning rate a stage's config (with its overrides) trains at.
    static func configRate(_ stage: PipelineConfig.Stage) throws -> Double {
        Double(try TrainConfig.load(path: stage.config, overrides: stage.overrides).training.learningRate)
    }

    static func configRank(_ stage: PipelineConfig.Stage) throws -> Int {
        try TrainConfig.load(path: stage.config, overrides: stage.overrides).lora?.rank ?? 0
    }
}
