import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceTraining
import SubspaceAnalysis

/// The knowledge-preservation experiment LoRA-Null exists for. Pre-trained knowledge is the base model's
/// language modelling (held-out corpus loss); the new task is the SFT set. Full fine-tuning, LoRA
/// (random init) and LoRA-Null null / v1 / v2 at the same rank and step budget, each at its best learning
/// rate from a sweep that brackets the optimum (`Sweep`), over seeds; task quality (SFT validation loss,
/// exact match) and forgetting (increase of the held-out corpus loss over the base's), mean ± std, with
/// Welch comparisons against LoRA that say "not distinguishable" inside the noise.
public enum LoRANullStudy {
    public struct MethodResult: Codable, Sendable {
        public var method: String
        public var sweep: SweepResult
        public var taskLoss: Statistic?
        public var exactMatch: Statistic?
        public var corpusLoss: Statistic?
        public var forgetting: Statistic?
        enum CodingKeys: String, CodingKey {
            case method, sweep, forgetting
            case taskLoss = "task_val_loss", exactMatch = "exact_match", corpusLoss = "corpus_loss"
        }
    }

    public struct Comparison: Codable, Sendable {
        public var method: String
        public var against: String
        public var forgetting: SeedComparison?
        public var taskLoss: SeedComparison?
        enum CodingKeys: String, CodingKey { case method, against, forgetting, taskLoss = "task_val_loss" }
    }

    public struct Results: Codable, Sendable {
        public var command: String?
        public var base: String
        public var baseCorpusLoss: Double
        public var rank: Int
        public var alpha: Float
        public var steps: Int
        public var seeds: [UInt64]
        public var covariance: String
        public var methods: [MethodResult]
        public var comparisons: [Comparison]
        public var findings: [String]
        enum CodingKeys: String, CodingKey {
            case command, base, rank, alpha, steps, seeds, covariance, methods, comparisons, findings
            case baseCorpusLoss = "base_corpus_loss"
        }
    }

    public static func run(_ config: LoRANullStudyConfig, context: StudyContext, command: String? = nil) throws -> Results {
        let s = config.study, world = context.world
        let stages = RunStages(output: config.train.run.output, context: context)
        let finetune = stages.path("finetune.yaml")
        try context.onRoot("writing \(finetune)") {
            try FileManager.default.createDirectory(atPath: stages.output, withIntermediateDirectories: true)
            try AtomicFile.write(Array(config.train.resolvedYAML().utf8), to: finetune)  // the sections with --set applied
        }

        // The base model: given, or pre-trained on the corpus.
        let base: String
        var upstream: [RunStages.Done] = []
        if let given = s.baseModel {
            base = given
            upstream = [RunStages.Done(folder: given, lineage: RunStages.lineage("base model \(given)"))]
        } else {
            let done = try stages.train("base", config: s.baseConfig, overrides: s.baseOverrides + ["data.path=\(s.corpus)"])
            base = done.final
            upstream = [done]
        }
        let modelConfig = try ModelConfig(hfConfigAt: (base as NSString).appendingPathComponent("config.json"))
        let targets = s.targets ?? LoRANullBuild.allTargets(modelConfig)
        let T = config.train.data.sequence
        let heldOut = try CalibrationSet.load(s.corpus, options: CalibrationSet.Options(sequenceLength: T, maxSequences: s.forgettingSequences, split: .validation), model: modelConfig)
        let baseLoss = try HeldOutLoss.evaluate(model: base, data: heldOut, communicator: world)
        context.say("base: held-out corpus loss \(String(format: "%.4f", baseLoss)) over \(heldOut.count) sequences")

        // LoRA-Null adapters, built once per variant from the corpus (train split).
        var adapters: [LoRANullVariant: String] = [:]
        for m in s.methods {
            guard let v = m.variant else { continue }
            let folder = stages.path("adapters", v.rawValue)
            let lineage = RunStages.lineage("lora-null \(v.rawValue) r=\(s.rank) alpha=\(s.alpha) targets=\(targets) cov=\(s.covariance.rawValue) calib=\(s.corpus) n=\(s.calibrationSequences) T=\(T)", after: upstream)
            if try !stages.isDone(folder, lineage: lineage, required: [LoRANullManifest.fileName]) {
                try stages.prepare(folder, name: "adapter-\(v.rawValue)", lineage: lineage)
                var o = LoRANullBuild.Options(model: base, calibration: s.corpus, rank: s.rank, variant: v, output: folder)
                o.calibrationOptions = CalibrationSet.Options(sequenceLength: T, maxSequences: s.calibrationSequences, split: .train)
                o.targets = targets
                o.covariance = s.covariance
                o.alpha = s.alpha
                let started = Date()
                try LoRANullBuild.run(o, communicator: world) { context.say("adapter \(v.rawValue): " + $0) }
                try stages.markDone(folder, name: "adapter-\(v.rawValue)", lineage: lineage, seconds: Date().timeIntervalSince(started))
            }
            adapters[v] = folder
        }

        // Per method: the learning-rate sweep, the chosen rate over seeds, then forgetting per seed.
        let targetList = "[" + targets.joined(separator: ", ") + "]"
        var results: [MethodResult] = []
        for m in s.methods {
            var overrides = ["model.source=hf", "model.path=\(base)"]
            switch m {
            case .full: overrides.append("lora=null")
            case .lora: overrides += ["lora.rank=\(s.rank)", "lora.alpha=\(s.alpha)", "lora.targets=\(targetList)", "lora.initialisation=random"]
            case .null, .v1, .v2:
                overrides += ["lora.rank=\(s.rank)", "lora.alpha=\(s.alpha)", "lora.targets=\(targetList)", "lora.initialisation=lora-null",
                              "lora.adapter=\(adapters[m.variant!]!)"]
            }
            let sweep = try Sweep.run(method: m.rawValue, settings: s.sweep(m)) { lr, seed in
                let name = "\(m.rawValue)/lr-\(String(format: "%.3g", lr))/seed-\(seed)"
                let done = try stages.train(name, config: finetune, overrides: overrides + [
                    "training.learning_rate=\(lr)", "training.min_learning_rate=\(lr / 10)", "run.seed=\(seed)"], after: upstream)
                return (done.folder, try stages.finalMetric(done.folder))
            }
            var corpus: [Double] = [], exact: [Double] = []
            for run in sweep.seedRuns {
                let final = (run.folder as NSString).appendingPathComponent("final")
                let loss = m == .full ? try HeldOutLoss.evaluate(model: final, data: heldOut, communicator: world)
                    : try HeldOutLoss.evaluate(model: base, adapter: final, data: heldOut, communicator: world)
                corpus.append(loss)
                let em = try stages.finalMetric(run.folder, key: "exact_match")
                if em.isFinite { exact.append(em) }
            }
            let result = MethodResult(method: m.rawValue, sweep: sweep, taskLoss: sweep.score, exactMatch: Statistic(exact),
                                      corpusLoss: Statistic(corpus), forgetting: Statistic(corpus.map { $0 - baseLoss }))
            context.say("\(m.rawValue): lr \(String(format: "%.3g", sweep.bestLearningRate)) (\(sweep.note)); task val loss \(result.taskLoss?.formatted(4) ?? "–"), forgetting \(result.forgetting?.formatted(4) ?? "–")")
            results.append(result)
        }

        var comparisons: [Comparison] = []
        for m in results where ["null", "v1", "v2"].contains(m.method) {
            for against in results where ["lora", "full"].contains(against.method) {
                comparisons.append(Comparison(method: m.method, against: against.method,
                                              forgetting: zipStat(m.forgetting, against.forgetting).map { SeedComparison($0, $1) },
                                              taskLoss: zipStat(m.taskLoss, against.taskLoss).map { SeedComparison($0, $1) }))
            }
        }
        var out = Results(command: command, base: base, baseCorpusLoss: baseLoss, rank: s.rank, alpha: s.alpha, steps: config.train.training.steps,
                          seeds: s.seeds, covariance: s.covariance.rawValue, methods: results, comparisons: comparisons, findings: [])
        out.findings = LoRANullStudyReport.findings(out)
        try context.onRoot("writing the LoRA-Null report") { try LoRANullStudyReport.write(out, to: stages.output) }
        return out
    }

    static func zipStat(_ a: Statistic?, _ b: Statistic?) -> (Statistic, Statistic)? {
        guard let a, let b else { return nil }
        return (a, b)
    }
}
