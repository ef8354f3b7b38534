import Foundation
import SubspaceAnalysis
import SubspaceTraining

/// A point of a curve: the value after `step`, and the seconds since the run began.
public struct CurvePoint: Sendable, Codable, Equatable {
    public var step: Int
    public var value: Double
    public var seconds: Double
}

/// What one group (one mode, one seed) measured, gathered on world rank 0.
public struct GroupRun: Sendable, Codable, Equatable {
    public struct Parameters: Sendable, Codable, Equatable {
        public var total: Int
        public var trainable: Int
        public var frozen: Int
        /// All layers' W_q and W_k: what `ortho-frozen` freezes.
        public var qkWeights: Int
    }

    public struct RankMemory: Sendable, Codable, Equatable {
        public var rank: Int
        /// VmHWM at the end of the run (after it was lowered to the resident size at the start).
        public var peakBytes: Int
        /// VmRSS when the run started (what earlier runs in the same process left resident).
        public var startBytes: Int
        /// Whether the peak could be lowered at the start; if not, it is the process's peak so far.
        public var peakReset: Bool
    }

    /// The intended-frozen tensors compared bit for bit before and after training.
    public struct FreezeVerification: Sendable, Codable, Equatable {
        public var frozenTensors: Int
        /// Intended-frozen tensors that changed (must be empty).
        public var changed: [String]
        /// Intended-trainable tensors that did not change at all (should be empty).
        public var unchangedTrainable: [String]
        public var passed: Bool { changed.isEmpty && unchangedTrainable.isEmpty }
    }

    public var mode: QKFreezeMode
    public var seed: UInt64
    /// World ranks of the group.
    public var ranks: [Int]
    /// The run folder.
    public var output: String
    public var parameters: Parameters
    public var steps: Int
    public var tokensPerStep: Int
    /// Seconds from the first step to the end of the last (evaluations and checkpoints included).
    public var wallSeconds: Double
    /// Training throughput: the median over steps 2…n of each step's tokens/s (step 1 allocates).
    public var tokensPerSecond: Double
    /// First and third quartiles of the per-step rates (nil with fewer than 4 steps after the first).
    public var tokensPerSecondQuartiles: [Double]?
    public var trainLoss: [CurvePoint]
    public var validationPerplexity: [CurvePoint]
    public var memory: [RankMemory]
    public var freeze: FreezeVerification

    /// Mean train loss over the last tenth of the steps (at least one).
    public var finalTrainLoss: Double? {
        guard !trainLoss.isEmpty else { return nil }
        let tail = trainLoss.suffix(max(1, trainLoss.count / 10))
        return tail.reduce(0) { $0 + $1.value } / Double(tail.count)
    }

    public var finalPerplexity: Double? { validationPerplexity.last?.value }
    /// The largest peak over the group's ranks.
    public var peakMemoryBytes: Int? { memory.map(\.peakBytes).max() }

    /// The first evaluation at or below `target`.
    public func firstReaching(_ target: Double) -> CurvePoint? {
        validationPerplexity.first { $0.value <= target }
    }
}

/// One mode over its seeds.
public struct ModeSummary: Sendable, Codable, Equatable {
    public var mode: QKFreezeMode
    public var seeds: [UInt64]
    public var parameters: GroupRun.Parameters
    public var finalPerplexity: Statistic?
    public var finalTrainLoss: Statistic?
    public var tokensPerSecond: Statistic?
    public var wallSeconds: Statistic?
    /// Over the seeds that reached the target; `reachedTarget` says how many did.
    public var stepsToTarget: Statistic?
    public var secondsToTarget: Statistic?
    public var reachedTarget: Int
    /// Largest per-rank peak of each seed's run.
    public var peakMemoryBytes: Statistic?
    /// Every seed's run kept its intended-frozen tensors bit-identical and moved all others.
    public var freezeVerified: Bool
}

/// One of the seed's hypotheses with what was measured and the bar it had to clear.
public struct Hypothesis: Sendable, Codable, Equatable {
    public var id: String
    public var claim: String
    public var measured: String
    public var threshold: String
    /// nil: not decidable (a group it needs did not run) or inconclusive.
    public var pass: Bool?
    public var value: Double?
    /// The difference lies inside the measurement's noise band: neither PASS nor FAIL.
    public var inconclusive: Bool?

    public var verdict: String { inconclusive == true ? "inconclusive" : pass.map { $0 ? "PASS" : "FAIL" } ?? "n/a" }
}

/// What the study was asked to do, as recorded in results.json.
public struct StudyDescription: Sendable, Codable, Equatable {
    public var modes: [QKFreezeMode]
    public var seeds: [UInt64]
    public var qkInit: String
    public var gain: Double
    public var h2Tolerance: Double
    public var h4Tolerance: Double
    public var targetPerplexity: Double?
    public var model: String
    public var training: String
    public var data: String

    public init(_ config: QKFreezeStudyConfig) {
        let (m, t, d) = (config.train.model, config.train.training, config.train.data)
        modes = config.study.modes
        seeds = config.seeds
        qkInit = config.study.qkInit.rawValue
        gain = Double(config.study.gain)
        h2Tolerance = config.study.h2Tolerance
        h4Tolerance = config.study.h4Tolerance
        targetPerplexity = config.study.targetPerplexity
        model = m.source == .hf ? "hf \(m.path ?? "?")"
            : "\(m.family.rawValue), \(m.layers) layers, width \(m.width), \(m.heads) heads\(m.kvHeads.map { " (\($0) kv)" } ?? ""), MLP \(m.intermediate ?? (m.family == .gpt2 ? 4 * m.width : (8 * m.width / 3 + 63) / 64 * 64)), context \(m.context), vocab \(m.vocab)"
        training = "\(t.steps) steps, global batch \(t.globalBatch) × \(d.sequence) tokens, lr \(t.learningRate) (warmup \(t.warmup), \(t.schedule.rawValue) to \(t.minLearningRate)), weight decay \(t.weightDecay), ZeRO \(t.zeroStage)"
        data = "\(d.kind.rawValue) \(d.path), tokenizer \(d.tokenizer)"
    }
}

/// Everything the study measured, its per-mode summaries and the verdict: results.json.
public struct StudyResults: Sendable, Codable, Equatable {
    public static let format = "subspace-qk-freeze-1"
    public var format = StudyResults.format
    public var command: String?
    public var study: StudyDescription
    public var plan: StudyPlan
    /// The perplexity timed in `stepsToTarget`, and where it came from ("config" or "auto": the highest
    /// final perplexity of any run, the level all of them reach).
    public var targetPerplexity: Double?
    public var targetSource: String
    public var groups: [GroupRun]
    public var summaries: [ModeSummary]
    public var verdict: [Hypothesis]

    public init(study: StudyDescription, plan: StudyPlan, groups: [GroupRun], command: String? = nil) {
        self.command = command
        self.study = study
        self.plan = plan
        self.groups = groups.sorted { ($0.seed, $0.mode) < ($1.seed, $1.mode) }
        if let target = study.targetPerplexity {
            targetPerplexity = target
            targetSource = "config"
        } else {
            targetPerplexity = groups.compactMap(\.finalPerplexity).max()
            targetSource = "auto"
        }
        let byMode = Dictionary(grouping: self.groups, by: \.mode)
        let target = targetPerplexity
        summaries = byMode.keys.sorted().map { mode in
            Self.summary(mode, runs: byMode[mode]!, target: target)
        }
        verdict = []
        verdict = hypotheses()
    }

    public func summary(_ mode: QKFreezeMode) -> ModeSummary? { summaries.first { $0.mode == mode } }

    static func summary(_ mode: QKFreezeMode, runs: [GroupRun], target: Double?) -> ModeSummary {
        let reached = target.map { t in runs.compactMap { $0.firstReaching(t) } } ?? []
        return ModeSummary(
            mode: mode, seeds: runs.map(\.seed), parameters: runs[0].parameters,
            finalPerplexity: Statistic(runs.compactMap(\.finalPerplexity)),
            finalTrainLoss: Statistic(runs.compactMap(\.finalTrainLoss)),
            tokensPerSecond: Statistic(runs.map(\.tokensPerSecond).filter(\.isFinite)),
            wallSeconds: Statistic(runs.map(\.wallSeconds)),
            stepsToTarget: Statistic(reached.map { Double($0.step) }),
            secondsToTarget: Statistic(reached.map(\.seconds)),
            reachedTarget: reached.count,
            peakMemoryBytes: Statistic(runs.compactMap(\.peakMemoryBytes).map(Double.init)),
            freezeVerified: runs.allSatisfy(\.freeze.passed))
    }

    /// The seed's four hypotheses (its Phase 5 table), with the frozen group C = `ortho-frozen`,
    /// B = `ortho`, A = `standard`. Measured on means over seeds.
    func hypotheses() -> [Hypothesis] {
        let frozen = summary(.orthoFrozen), ortho = summary(.ortho), standard = summary(.standard)
        func percent(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
        func ppl(_ s: Statistic?) -> String {
            guard let s else { return "?" }
            return s.values.count > 1 ? String(format: "%.3f ± %.3f", s.mean, s.std) : String(format: "%.3f", s.mean)
        }
        var out: [Hypothesis] = []

        // H1: trainable parameters lower by exactly W_q and W_k's share, and those really stayed frozen.
        let reference = ortho ?? standard
        if let frozen, let reference {
            let total = Double(reference.parameters.total)
            let measured = Double(reference.parameters.trainable - frozen.parameters.trainable) / total
            let expected = Double(frozen.parameters.qkWeights) / total
            let countsAgree = reference.parameters.trainable - frozen.parameters.trainable == frozen.parameters.qkWeights
            out.append(Hypothesis(
                id: "H1", claim: "ortho-frozen trains fewer parameters, by W_q and W_k's share",
                measured: "trainable \(frozen.parameters.trainable) vs \(reference.parameters.trainable) (\(reference.mode.rawValue)): −\(percent(measured)); "
                    + "frozen Q/K bit-identical after training: \(frozen.freezeVerified ? "yes" : "NO")",
                threshold: "−\(percent(expected)) (W_q, W_k: \(frozen.parameters.qkWeights) of \(reference.parameters.total)), and unchanged by training",
                pass: countsAgree && frozen.freezeVerified, value: measured))
        } else {
            out.append(Hypothesis(id: "H1", claim: "ortho-frozen trains fewer parameters, by W_q and W_k's share",
                                  measured: "needs ortho-frozen and ortho or standard", threshold: "", pass: nil, value: nil))
        }

        // H2: quality kept: |PPL_frozen − PPL_ortho| / PPL_ortho < tolerance.
        if let f = frozen?.finalPerplexity, let o = ortho?.finalPerplexity {
            let gap = abs(f.mean - o.mean) / o.mean
            // With seeds, a gap whose 95% interval (Welch's t, not a fixed two standard errors: with three seeds
            // the critical t is 2.8–4.3) straddles the tolerance is not decided.
            let u = (SeedComparison(f, o).confidenceHalfWidth() ?? 0) / o.mean
            let straddles = u > 0 && abs(gap - study.h2Tolerance) < u
            out.append(Hypothesis(id: "H2", claim: "ortho-frozen matches ortho's validation perplexity",
                                  measured: "PPL \(ppl(f)) vs \(ppl(o)): |Δ| = \(percent(gap))" + (u > 0 ? " ± \(percent(u))" : ""),
                                  threshold: "< \(percent(study.h2Tolerance))", pass: straddles ? nil : gap < study.h2Tolerance, value: gap,
                                  inconclusive: straddles ? true : nil))
        } else {
            out.append(Hypothesis(id: "H2", claim: "ortho-frozen matches ortho's validation perplexity",
                                  measured: "needs ortho-frozen and ortho", threshold: "< \(percent(study.h2Tolerance))", pass: nil, value: nil))
        }

        // H3: faster: tokens/s of ortho-frozen above ortho's — decided only outside the noise band: the
        // larger of each run's step-to-step spread (half the interquartile range over the median) and the
        // spread between seeds. Groups that ran side by side share cores and memory bandwidth, so their
        // per-step rates swing with each other's phases; the band then says so by being wide.
        if let f = frozen?.tokensPerSecond, let o = ortho?.tokensPerSecond, o.mean > 0 {
            let ratio = f.mean / o.mean
            func tps(_ s: Statistic) -> String { s.values.count > 1 ? String(format: "%.0f ± %.0f", s.mean, s.std) : String(format: "%.0f", s.mean) }
            let band = speedNoiseBand([.orthoFrozen, .ortho])
            let concurrent = plan.waves.contains { wave in wave.contains { $0.mode == .orthoFrozen } && wave.contains { $0.mode == .ortho } }
            let inside = abs(ratio - 1) <= band
            out.append(Hypothesis(id: "H3", claim: "ortho-frozen trains faster than ortho",
                                  measured: "\(tps(f)) vs \(tps(o)) tokens/s: ×\(String(format: "%.3f", ratio)), noise band ±\(percent(band))"
                                      + (concurrent ? " (groups ran side by side)" : " (groups ran one after another)"),
                                  threshold: "> ×1 beyond the noise band", pass: inside ? nil : ratio > 1, value: ratio,
                                  inconclusive: inside ? true : nil))
        } else {
            out.append(Hypothesis(id: "H3", claim: "ortho-frozen trains faster than ortho",
                                  measured: "needs ortho-frozen and ortho", threshold: "> ×1 beyond the noise band", pass: nil, value: nil))
        }

        // H4: competitive: PPL_frozen ≤ PPL_standard · (1 + tolerance).
        if let f = frozen?.finalPerplexity, let s = standard?.finalPerplexity {
            let ratio = f.mean / s.mean
            let u = (SeedComparison(f, s).confidenceHalfWidth() ?? 0) / s.mean
            let straddles = u > 0 && abs(ratio - (1 + study.h4Tolerance)) < u
            out.append(Hypothesis(id: "H4", claim: "ortho-frozen is within reach of standard",
                                  measured: "PPL \(ppl(f)) vs \(ppl(s)): ×\(String(format: "%.4f", ratio))" + (u > 0 ? String(format: " ± %.4f", u) : ""),
                                  threshold: "≤ ×\(String(format: "%.2f", 1 + study.h4Tolerance))",
                                  pass: straddles ? nil : ratio <= 1 + study.h4Tolerance, value: ratio, inconclusive: straddles ? true : nil))
        } else {
            out.append(Hypothesis(id: "H4", claim: "ortho-frozen is within reach of standard",
                                  measured: "needs ortho-frozen and standard", threshold: "≤ ×\(String(format: "%.2f", 1 + study.h4Tolerance))",
                                  pass: nil, value: nil))
        }
        return out
    }

    /// One line for the index page: each hypothesis's verdict with its measured figure.
    public var finding: String {
        let seeds = study.seeds.count
        return verdict.map { "\($0.id) \($0.verdict)" }.joined(separator: ", ")
            + " (\(seeds) seed\(seeds == 1 ? "" : "s")); "
            + (verdict.first { $0.id == "H2" }.map { "H2: \($0.measured)" } ?? "")
    }

    /// The relative noise of a tokens/s comparison between `modes`: the largest of each run's half
    /// interquartile range over its median and each mode's coefficient of variation over seeds.
    func speedNoiseBand(_ modes: [QKFreezeMode]) -> Double {
        var band = 0.0
        for run in groups where modes.contains(run.mode) {
            if let q = run.tokensPerSecondQuartiles, q.count == 2, run.tokensPerSecond > 0 {
                band = max(band, (q[1] - q[0]) / 2 / run.tokensPerSecond)
            }
        }
        for mode in modes {
            if let s = summary(mode)?.tokensPerSecond, s.values.count > 1, s.mean > 0 { band = max(band, s.std / s.mean) }
        }
        return band
    }

    // MARK: JSON

    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.keyEncodingStrategy = .convertToSnakeCase
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}
