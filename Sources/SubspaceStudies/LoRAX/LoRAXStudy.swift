import Foundation
import SubspaceAnalysis
import SubspaceCore
import SubspaceModel
import SubspaceTraining

/// One adapter on one base, scored on the SFT test set.
public struct LoRAXArmResult: Sendable, Codable, Equatable {
    /// "b1" (the related target), "control" (the unrelated one) or "b0" (the adapter at home).
    public var base: String
    /// none, copied (the source adapter unchanged), copied (grown) (grown with the model: different width),
    /// transferred, transferred-k<K>, direct (trained on the base).
    public var arm: String
    public var seed: UInt64
    public var valLoss: Double
    public var exactMatch: Double?
    /// The transfer's report, for transferred arms.
    public var transferredModules: Int?
    public var mappedModules: Int?

    enum CodingKeys: String, CodingKey {
        case base, arm, seed
        case valLoss = "val_loss"
        case exactMatch = "exact_match"
        case transferredModules = "transferred_modules"
        case mappedModules = "mapped_modules"
    }
}

/// Mean ± std over seeds of one (base, arm).
public struct LoRAXArmSummary: Sendable, Codable, Equatable {
    public var base: String
    public var arm: String
    public var valLoss: Statistic?
    public var exactMatch: Statistic?

    enum CodingKeys: String, CodingKey {
        case base, arm
        case valLoss = "val_loss"
        case exactMatch = "exact_match"
    }
}

/// A verdict between two arms over the seeds (Welch's two-sided t-test, p < 0.05).
public struct LoRAXVerdict: Sendable, Codable, Equatable {
    public var claim: String
    public var metric: String
    public var comparison: SeedComparison
}

/// Similarity of a base pair (from a transfer of the first seed's adapter).
public struct LoRAXPairSimilarity: Sendable, Codable, Equatable {
    public var pair: String
    public var k: [Int]
    public var meanPhiU: Double
    public var meanPhiV: Double
    public var meanChanceU: Double
    public var meanChanceV: Double
    public var meanRatioU: Double
    public var meanRatioV: Double
    public var meanNormRatio: Double?
    /// Under the study's threshold (default: halfway from chance to 1): modules transferred of mapped,
    /// or the error when none was.
    public var defaultThresholdTransferred: Int
    public var mapped: Int
    public var refusal: String?

    enum CodingKeys: String, CodingKey {
        case pair, k, mapped, refusal
        case meanPhiU = "mean_phi_u"
        case meanPhiV = "mean_phi_v"
        case meanChanceU = "mean_chance_u"
        case meanChanceV = "mean_chance_v"
        case meanRatioU = "mean_ratio_u"
        case meanRatioV = "mean_ratio_v"
        case meanNormRatio = "mean_norm_ratio"
        case defaultThresholdTransferred = "default_threshold_transferred"
    }
}

public struct LoRAXStudyResults: Sendable, Codable {
    public var config: String
    public var worldSize: Int
    public var arms: [LoRAXArmResult]
    public var summaries: [LoRAXArmSummary]
    public var similarities: [LoRAXPairSimilarity]
    public var verdicts: [LoRAXVerdict]
    public var wallSeconds: Double

    enum CodingKeys: String, CodingKey {
        case config, arms, summaries, similarities, verdicts
        case worldSize = "world_size"
        case wallSeconds = "wall_seconds"
    }
}

/// The LoRA-X experiment. A base B0 is pretrained on the corpus; B1 is B0 trained further on the corpus
/// (another seed: other batches; the related pair); C is pretrained like B0 from another seed (the
/// unrelated control). For each seed, a LoRA trained on B0 for the SFT task is transferred to B1 (under
/// the configured threshold) and to C (threshold 0, forced, since the threshold refuses it), and scored on
/// the SFT test set against no adapter, the source adapter copied unchanged, and a LoRA trained on the
/// target directly (the ceiling). Every run is a `RunStages` stage, so a rerun skips what is done.
public enum LoRAXStudy {
    public static func run(config c: LoRAXStudyConfig, context: StudyContext) throws -> LoRAXStudyResults? {
        let started = Date()
        let stages = RunStages(output: c.output, context: context)
        let world = context.world
        try context.onRoot("writing \(stages.path("study.resolved.yaml"))") {
            try FileManager.default.createDirectory(atPath: c.output, withIntermediateDirectories: true)
            try c.resolvedYAML.write(toFile: stages.path("study.resolved.yaml"), atomically: true, encoding: .utf8)
        }

        let baseCommon = c.common + ["data.kind=corpus", "data.path=\(c.corpus)", "evaluation.exact_match=0"]
        if let width = c.grownWidth {
            // A width that cannot grow B0's shape is an error now, not after B0 has trained.
            let shape = try TrainConfig.load(path: c.baseConfig, overrides: baseCommon + ["model.source=new"]).modelShape()
            do { _ = try WidthGrowth.grownConfig(shape, width: width) } catch let e as AnalysisError {
                throw ConfigError(.value, source: "study", key: "study.grown_width", e.reason)
            }
        }
        let b0 = try stages.train("b0", config: c.baseConfig, overrides: baseCommon + [
            "model.source=new", "run.seed=\(c.baseSeed)", "training.steps=\(c.baseSteps)"])
        let b1 = try stages.train("b1", config: c.baseConfig, overrides: baseCommon + [
            "model.source=hf", "model.path=\(b0.final)", "run.seed=\(c.continueSeed)", "training.steps=\(c.continueSteps)",
            "training.learning_rate=\(c.continueLearningRate)", "training.min_learning_rate=\(c.continueLearningRate / 10)",
            "training.warmup=\(min(10, c.continueSteps))"], after: [b0])
        let control = try stages.train("control", config: c.baseConfig, overrides: baseCommon + [
            "model.source=new", "run.seed=\(c.controlSeed)", "training.steps=\(c.baseSteps)"])
        // The different-width arm: B0 grown to another width (function-preserving, WidthGrowth), then trained
        // further like B1, so it is a related base of other shapes.
        var grown: RunStages.Done? = nil
        if let width = c.grownWidth {
            let initial = try grow(b0, width: width, config: c, stages: stages, context: context)
            grown = try stages.train("grown", config: c.baseConfig, overrides: baseCommon + [
                "model.source=hf", "model.path=\(initial.final)", "run.seed=\(c.continueSeed)", "training.steps=\(c.grownSteps)",
                "training.learning_rate=\(c.continueLearningRate)", "training.min_learning_rate=\(c.continueLearningRate / 10)",
                "training.warmup=\(min(10, c.grownSteps))"], after: [initial])
        }

        func lora(_ name: String, on base: RunStages.Done, seed: UInt64) throws -> RunStages.Done {
            try stages.train(name, config: c.loraConfig, overrides: c.common + [
                "data.kind=sft", "data.path=\(c.sft)", "model.source=hf", "model.path=\(base.final)", "run.seed=\(seed)",
                "training.steps=\(c.loraSteps)", "training.learning_rate=\(c.loraLearningRate)",
                "training.min_learning_rate=\(c.loraLearningRate / 10)", "evaluation.exact_match=0", "evaluation.every=0"], after: [base])
        }

        var arms: [LoRAXArmResult] = []
        var similarities: [LoRAXPairSimilarity] = []
        let ranks = [c.subspaceRank] + c.extraSubspaceRanks.map { Optional($0) }
        for (i, seed) in c.seeds.enumerated() {
            let source = try lora("lora-b0-s\(seed)", on: b0, seed: seed)
            let direct = try lora("lora-b1-s\(seed)", on: b1, seed: seed)
            func score(_ base: String, _ arm: String, model: RunStages.Done, adapter: String?, report: LoRAXReport? = nil) throws {
                let m = try evaluate(model: model.final, adapter: adapter, config: c, scratch: stages.path("eval", "\(base)-\(arm)-s\(seed)"), context: context)
                arms.append(LoRAXArmResult(base: base, arm: arm, seed: seed, valLoss: m.valLoss, exactMatch: m.exactMatch,
                                           transferredModules: report?.transferredCount, mappedModules: report?.modules.count))
                context.say(String(format: "seed %d  %@ %@: val loss %.4f, exact match %@", seed, base, arm, m.valLoss,
                                   m.exactMatch.map { String(format: "%.3f", $0) } ?? "—"))
            }
            try score("b0", "source", model: b0, adapter: source.final)
            try score("b1", "none", model: b1, adapter: nil)
            try score("b1", "copied", model: b1, adapter: source.final)
            try score("b1", "direct", model: b1, adapter: direct.final)
            for k in ranks {
                var options = c.transferOptions
                options.subspaceRank = k
                let name = k.map { "transferred-k\($0)" } ?? "transferred"
                let folder = stages.path("transfer-b1-\(name)-s\(seed)")
                let report = try transfer(source: b0.final, target: b1.final, adapter: source.final, output: folder, options: options, context: context)
                if let report {
                    try score("b1", name, model: b1, adapter: folder, report: report)
                    if i == 0 { similarities.append(summary("b0 → b1 (\(name))", report, refusal: nil, defaultCount: report.transferredCount)) }
                } else {
                    context.say("seed \(seed) b1 \(name): no module transferred")
                }
            }
            if let grown, let width = c.grownWidth {
                let wide = try lora("lora-grown-s\(seed)", on: grown, seed: seed)
                try score("grown", "none", model: grown, adapter: nil)
                try score("grown", "direct", model: grown, adapter: wide.final)
                // The plain copy across widths: the source adapter grown by the weights' own rule.
                let copy = stages.path("grown-copy-s\(seed)")
                try context.onRoot("growing the B0 adapter to width \(width)") {
                    try WidthGrowth.growAdapter(folder: source.final, sourceModel: b0.final, grownModel: grown.final, output: copy)
                }
                try score("grown", "copied (grown)", model: grown, adapter: copy)
                let folder = stages.path("transfer-grown-s\(seed)")
                let underThreshold = try transfer(source: b0.final, target: grown.final, adapter: source.final, output: folder,
                                                  options: c.transferOptions, context: context)
                if let report = underThreshold {
                    try score("grown", "transferred", model: grown, adapter: folder, report: report)
                    if i == 0 { similarities.append(summary("b0 → grown (width \(width))", report, refusal: nil, defaultCount: report.transferredCount)) }
                }
                if underThreshold.map({ $0.transferredCount < $0.modules.count }) ?? true {
                    // Some or all modules refused under the threshold: forced too, to show what they would have done.
                    var forced = c.transferOptions
                    forced.threshold = 0
                    let folder = stages.path("transfer-grown-forced-s\(seed)")
                    if let report = try transfer(source: b0.final, target: grown.final, adapter: source.final, output: folder,
                                                 options: forced, context: context) {
                        try score("grown", "transferred (threshold 0)", model: grown, adapter: folder, report: report)
                        if i == 0 && underThreshold == nil {
                            similarities.append(summary("b0 → grown (width \(width))", report,
                                                        refusal: "no module was transferred under the threshold", defaultCount: 0))
                        }
                    }
                }
            }
            try score("control", "none", model: control, adapter: nil)
            try score("control", "copied", model: control, adapter: source.final)
            // The control under the study's threshold: expected to be refused (similarity at chance).
            let refused = try transfer(source: b0.final, target: control.final, adapter: source.final,
                                       output: stages.path("transfer-control-default-s\(seed)"), options: c.transferOptions, context: context)
            var forced = c.transferOptions
            forced.threshold = 0
            let folder = stages.path("transfer-control-s\(seed)")
            if let report = try transfer(source: b0.final, target: control.final, adapter: source.final, output: folder, options: forced, context: context) {
                try score("control", "transferred (threshold 0)", model: control, adapter: folder, report: report)
                if i == 0 {
                    similarities.append(summary("b0 → control", report, refusal: refused == nil ? "no module was transferred under the threshold" : nil,
                                                defaultCount: refused?.transferredCount ?? 0))
                }
            }
        }

        guard context.isRoot else { return nil }
        var summaries: [LoRAXArmSummary] = []
        for (base, arm) in arms.map({ ($0.base, $0.arm) }) where !summaries.contains(where: { $0.base == base && $0.arm == arm }) {
            let runs = arms.filter { $0.base == base && $0.arm == arm }
            summaries.append(LoRAXArmSummary(base: base, arm: arm, valLoss: Statistic(runs.map(\.valLoss)),
                                             exactMatch: Statistic(runs.compactMap(\.exactMatch))))
        }
        func stat(_ base: String, _ arm: String, _ loss: Bool) -> Statistic? {
            summaries.first { $0.base == base && $0.arm == arm }.flatMap { loss ? $0.valLoss : $0.exactMatch }
        }
        var verdicts: [LoRAXVerdict] = []
        let claims: [(String, String, String, String, String)] = [
            ("b1", "transferred", "b1", "none", "the transferred adapter helps on the related target (vs no adapter)"),
            ("b1", "transferred", "b1", "copied", "projection vs copying the adapter unchanged (related target)"),
            ("b1", "transferred", "b1", "direct", "the transferred adapter against one trained on the target (ceiling)"),
            ("control", "transferred (threshold 0)", "control", "none", "the forced transfer on the unrelated control (vs no adapter)"),
            ("grown", "transferred", "grown", "none", "different width: the transferred adapter helps on the grown target (vs no adapter)"),
            ("grown", "transferred", "grown", "copied (grown)", "different width: projection vs the adapter grown with the model (grown target)"),
            ("grown", "transferred (threshold 0)", "grown", "none", "different width: the forced transfer on the grown target (vs no adapter)"),
            ("grown", "transferred", "grown", "direct", "different width: transferred vs trained on the grown target (ceiling)"),
            ("grown", "transferred (threshold 0)", "grown", "direct", "different width: forced transfer vs trained on the grown target (ceiling)"),
        ] + c.extraSubspaceRanks.map { k in
            ("b1", "transferred-k\(k)", "b1", "copied", "k = \(k): the projection at this k vs copying the adapter unchanged")
        }
        for (b, a, b2, a2, claim) in claims {
            for loss in [true, false] {
                if let x = stat(b, a, loss), let y = stat(b2, a2, loss) {
                    verdicts.append(LoRAXVerdict(claim: claim, metric: loss ? "val_loss" : "exact_match", comparison: SeedComparison(x, y)))
                }
            }
        }
        return LoRAXStudyResults(config: c.resolvedYAML, worldSize: world.size, arms: arms, summaries: summaries,
                                 similarities: similarities, verdicts: verdicts, wallSeconds: Date().timeIntervalSince(started))
    }

    /// B0 grown to `width` into `grown-init/final` (rank 0 writes; every rank has checked the width), a
    /// stage skipped when done with the same inputs.
    static func grow(_ b0: RunStages.Done, width: Int, config c: LoRAXStudyConfig, stages: RunStages,
                     context: StudyContext) throws -> RunStages.Done {
        let folder = stages.path("grown-init")
        let lineage = RunStages.lineage("width-growth width=\(width) noise=\(c.grownNoise) seed=\(c.continueSeed)", after: [b0])
        let done = RunStages.Done(folder: folder, lineage: lineage)
        if try stages.isDone(folder, lineage: lineage, required: ["final"]) {
            context.say("grown-init: done earlier (\(folder)), skipped")
            return done
        }
        try stages.prepare(folder, name: "grown-init", lineage: lineage)
        context.say("grown-init: B0 grown to width \(width) → \(done.final)")
        let started = Date()
        try context.onRoot("growing B0 to width \(width) (\(done.final))") {
            try WidthGrowth.grow(folder: b0.final, width: width, noise: Float(c.grownNoise), seed: c.continueSeed, output: done.final)
        }
        try stages.markDone(folder, name: "grown-init", lineage: lineage, seconds: Date().timeIntervalSince(started))
        return done
    }

    static func summary(_ pair: String, _ r: LoRAXReport, refusal: String?, defaultCount: Int) -> LoRAXPairSimilarity {
        func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }
        let ms = r.modules
        return LoRAXPairSimilarity(pair: pair, k: Array(Set(ms.map(\.k))).sorted(), meanPhiU: mean(ms.map(\.phiU)), meanPhiV: mean(ms.map(\.phiV)),
                                   meanChanceU: mean(ms.map(\.chanceU)), meanChanceV: mean(ms.map(\.chanceV)),
                                   meanRatioU: mean(ms.map(\.ratioU)), meanRatioV: mean(ms.map(\.ratioV)),
                                   meanNormRatio: ms.compactMap(\.projectedNormRatio).isEmpty ? nil : mean(ms.compactMap(\.projectedNormRatio)),
                                   defaultThresholdTransferred: defaultCount, mapped: ms.count, refusal: refusal)
    }

    /// A collective transfer; the report on every rank (rank 0 writes, the others read it after a barrier),
    /// or nil when no module was transferred (the same on every rank, since the count is broadcast).
    static func transfer(source: String, target: String, adapter: String, output: String, options: LoRAXOptions,
                         context: StudyContext) throws -> LoRAXReport? {
        do {
            _ = try LoRAXTransfer.transferFolders(sourceModel: source, targetModel: target, adapter: adapter, output: output,
                                                  options: options, communicator: context.world)
        } catch let error as AnalysisError where error.reason.hasPrefix("no module was transferred") {
            return nil
        }
        try context.world.barrier()
        return try LoRAXWriter.read(folder: output)
    }

    /// Validation loss and exact match of `model` with `adapter` (nil: none) on the SFT test set,
    /// through the trainer's own evaluation (collective).
    static func evaluate(model: String, adapter: String?, config c: LoRAXStudyConfig, scratch: String,
                         context: StudyContext) throws -> EvaluationMetrics {
        var overrides = c.common + [
            "data.kind=sft", "data.path=\(c.sft)", "model.source=hf", "model.path=\(model)", "run.output=\(scratch)",
            "evaluation.sequences=\(c.evaluationSequences)", "evaluation.exact_match=\(c.exactMatchExamples)",
            "checkpoint.resume=never", "lora.dropout=0",
        ]
        if let adapter {
            let lora = try PEFTAdapter.readConfig(folder: adapter)
            let targets: String
            switch lora.targets {
            case .names(let names): targets = "[" + names.map { "'\($0)'" }.joined(separator: ", ") + "]"
            case .pattern(let p): targets = "['re:\(p)']"
            }
            overrides += ["lora.rank=\(lora.rank)", "lora.alpha=\(lora.alpha)", "lora.targets=\(targets)", "lora.rslora=\(lora.useRSLoRA)"]
        }
        let train = try TrainConfig.load(path: c.loraConfig, overrides: overrides)
        let trainer = try Trainer(config: train, communicator: context.world, prepareModel: { m in
            guard let adapters = m.adapters else { return }
            if let adapter {
                let loaded = try PEFTAdapter.load(folder: adapter, for: m.config)
                for a in adapters.adapters {
                    guard let l = loaded.adapter(path: a.module.path) else { continue }
                    adapters.setFactor(a, b: true, loaded.factor(l, b: true))
                    adapters.setFactor(a, b: false, loaded.factor(l, b: false))
                }
            } else {
                for a in adapters.adapters { adapters.setFactor(a, b: true, Tensor(zeros: [a.module.outFeatures, adapters.config.rank])) }
            }
        })
        guard let metrics = try trainer.evaluate(step: 0) else {
            throw AnalysisError(file: c.sft, "no test set (test.jsonl) to evaluate on")
        }
        return metrics
    }
}
