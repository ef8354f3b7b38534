import Foundation
import SubspaceCore
import SubspaceAnalysis
import SubspaceTraining
import Yams

/// The LoRA-X study's configuration (configs/lora-x.yaml): one `study:` section naming the training
/// configs it composes and what it changes in them. Every key is checked; unknown keys are errors.
public struct LoRAXStudyConfig: Sendable, Equatable {
    /// Study folder: every run, transfer and the report.
    public var output = "runs/lora-x"
    /// Training config of the base models (pretraining on the corpus), e.g. configs/base.yaml.
    public var baseConfig = "configs/base.yaml"
    /// Training config of the LoRA runs on the SFT task, e.g. configs/student-lora.yaml.
    public var loraConfig = "configs/student-lora.yaml"
    /// Token shards (subspace data corpus) for the base models, and the SFT folder (subspace data sft).
    public var corpus = "data/shakespeare"
    public var sft = "data/sft"
    /// Overrides applied to every run (model shape, sequence, batch), as `key=value`.
    public var common: [String] = []
    /// B0 and the control C: pretraining steps, and C's seed (B0 uses base_seed).
    public var baseSteps = 600
    public var baseSeed: UInt64 = 1
    public var controlSeed: UInt64 = 101
    /// B1 = B0 continued on the corpus for this many steps, with this seed (other data order) and rate.
    public var continueSteps = 200
    public var continueSeed: UInt64 = 7
    public var continueLearningRate = 0.001
    /// The different-width arm (nil: none): B0 grown to this residual width (function-preserving,
    /// `WidthGrowth`: new units appended, new readers' weights Gaussian with std `grownNoise`), then
    /// trained further on the corpus for `grownSteps` steps with B1's seed and rate. Heads, key/value
    /// heads and the MLP width scale with it; the head dimension is kept.
    public var grownWidth: Int? = nil
    public var grownSteps = 200
    public var grownNoise = 0.02
    /// LoRA runs on the SFT task (on B0, and on B1 directly): steps, seeds (≥ 3 for a spread), rate.
    public var loraSteps = 300
    public var seeds: [UInt64] = [1, 2, 3]
    public var loraLearningRate = 0.002
    /// Transfer: subspace dimension k (null: half of each module's smallest dimension) and threshold
    /// (null: halfway from chance to 1); `subspace_ranks` adds arms at other k (the projection's price).
    public var subspaceRank: Int? = nil
    public var threshold: Double? = nil
    public var extraSubspaceRanks: [Int] = []
    public var svd: SVDMethod = .full
    /// Evaluation on the SFT test set: sequences for the loss, examples for exact match.
    public var evaluationSequences = 64
    public var exactMatchExamples = 64

    public init() {}

    static let keys = ["output", "base_config", "lora_config", "corpus", "sft", "common", "base_steps", "base_seed", "control_seed",
                       "continue_steps", "continue_seed", "continue_learning_rate", "grown_width", "grown_steps", "grown_noise", "lora_steps", "seeds", "lora_learning_rate",
                       "subspace_rank", "threshold", "subspace_ranks", "svd", "evaluation_sequences", "exact_match_examples"]

    public var transferOptions: LoRAXOptions { LoRAXOptions(subspaceRank: subspaceRank, threshold: threshold, method: svd) }

    /// Reads `path` and applies `--set study.key=value` overrides (YAML values).
    public static func load(path: String, overrides: [String] = []) throws -> LoRAXStudyConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(.unreadable, source: path, key: nil, "cannot read: \(FileSystemMessage.reason(error))")
        }
        var entries: [(String, Any?, String)] = []
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch { throw ConfigError(.syntax, source: path, key: nil, "not valid YAML: \(error)") }
        guard let top = root as? [String: Any], top.keys.sorted() == ["study"], let study = top["study"] as? [String: Any] else {
            throw ConfigError(.unknownKey, source: path, key: nil, "expected one top-level section 'study:'")
        }
        for (k, v) in study.sorted(by: { $0.key < $1.key }) { entries.append((k, v, path)) }
        for o in overrides {
            guard let eq = o.firstIndex(of: "="), o.hasPrefix("study.") else {
                throw ConfigError(.override, source: "--set \(o)", key: nil, "expected study.key=value")
            }
            let key = String(o[o.index(o.startIndex, offsetBy: 6)..<eq])
            let value: Any?
            do { value = try Yams.load(yaml: String(o[o.index(after: eq)...])) } catch {
                throw ConfigError(.syntax, source: "--set \(o)", key: "study.\(key)", "the value is not valid YAML: \(error)")
            }
            entries.append((key, value, "--set \(o)"))
        }
        var c = LoRAXStudyConfig()
        for (key, value, source) in entries { try c.set(key, value, source: source) }
        if let p = c.problems().first { throw ConfigError(.value, source: path, key: p.0, p.1) }
        return c
    }

    mutating func set(_ key: String, _ value: Any?, source: String) throws {
        func fail(_ what: String) -> ConfigError { ConfigError(.type, source: source, key: "study.\(key)", what) }
        func string() throws -> String { guard let s = value as? String else { throw fail("must be a string") }; return s }
        func int() throws -> Int { guard let i = value as? Int else { throw fail("must be an integer") }; return i }
        func seed() throws -> UInt64 { let i = try int(); guard i >= 0 else { throw fail("must be ≥ 0") }; return UInt64(i) }
        func double() throws -> Double {
            if let d = value as? Double { return d }
            if let i = value as? Int { return Double(i) }
            throw fail("must be a number")
        }
        func optional<T>(_ f: () throws -> T) throws -> T? { value == nil || value is NSNull ? nil : try f() }
        switch key {
        case "output": output = try string()
        case "base_config": baseConfig = try string()
        case "lora_config": loraConfig = try string()
        case "corpus": corpus = try string()
        case "sft": sft = try string()
        case "common":
            guard let list = value as? [Any] else { throw fail("must be a list of key=value strings") }
            common = try list.map { guard let s = $0 as? String, s.contains("=") else { throw fail("must be a list of key=value strings") }; return s }
        case "base_steps": baseSteps = try int()
        case "base_seed": baseSeed = try seed()
        case "control_seed": controlSeed = try seed()
        case "continue_steps": continueSteps = try int()
        case "continue_seed": continueSeed = try seed()
        case "continue_learning_rate": continueLearningRate = try double()
        case "grown_width": grownWidth = try optional(int)
        case "grown_steps": grownSteps = try int()
        case "grown_noise": grownNoise = try double()
        case "lora_steps": loraSteps = try int()
        case "seeds":
            guard let list = value as? [Int], list.allSatisfy({ $0 >= 0 }) else { throw fail("must be a list of seeds (integers ≥ 0)") }
            seeds = list.map(UInt64.init)
        case "lora_learning_rate": loraLearningRate = try double()
        case "subspace_rank": subspaceRank = try optional(int)
        case "threshold": threshold = try optional(double)
        case "subspace_ranks":
            guard let list = value as? [Int] else { throw fail("must be a list of integers") }
            extraSubspaceRanks = list
        case "svd":
            guard let m = SVDMethod(rawValue: try string()) else { throw fail("must be full or randomized") }
            svd = m
        case "evaluation_sequences": evaluationSequences = try int()
        case "exact_match_examples": exactMatchExamples = try int()
        default:
            throw fail("unknown key (known: \(LoRAXStudyConfig.keys.joined(separator: ", ")))")
        }
    }

    /// Problems as (key, message).
    public func problems() -> [(String, String)] {
        var out: [(String, String)] = []
        for (k, v) in [("base_steps", baseSteps), ("continue_steps", continueSteps), ("lora_steps", loraSteps),
                       ("evaluation_sequences", evaluationSequences)] where v < 1 {
            out.append(("study.\(k)", "must be ≥ 1, got \(v)"))
        }
        if grownSteps < 1 { out.append(("study.grown_steps", "must be ≥ 1, got \(grownSteps)")) }
        if !(grownNoise >= 0 && grownNoise.isFinite) { out.append(("study.grown_noise", "must be a finite number ≥ 0")) }
        if let w = grownWidth, w < 1 { out.append(("study.grown_width", "must be ≥ 1 (or null: no different-width arm), got \(w)")) }
        if exactMatchExamples < 0 { out.append(("study.exact_match_examples", "must be ≥ 0")) }
        if seeds.isEmpty || Set(seeds).count != seeds.count { out.append(("study.seeds", "must be a non-empty list without repeats")) }
        if baseSeed == controlSeed { out.append(("study.control_seed", "must differ from base_seed (the control is an unrelated base)")) }
        if extraSubspaceRanks.contains(where: { $0 < 1 }) { out.append(("study.subspace_ranks", "must be ≥ 1")) }
        // A repeated k would be one arm scored twice per seed, read as twice the seeds.
        if Set(extraSubspaceRanks).count != extraSubspaceRanks.count {
            out.append(("study.subspace_ranks", "must not repeat a k, got \(extraSubspaceRanks)"))
        }
        for p in transferOptions.problems() { out.append(("study.subspace_rank/threshold", p)) }
        return out
    }

    /// The settings as YAML, every key present (written beside the results).
    public var resolvedYAML: String {
        func list<T>(_ xs: [T]) -> String { "[" + xs.map { "\($0)" }.joined(separator: ", ") + "]" }
        return """
            study:
              output: \(output)
              base_config: \(baseConfig)
              lora_config: \(loraConfig)
              corpus: \(corpus)
              sft: \(sft)
              common: \(list(common.map { "'\($0)'" }))
              base_steps: \(baseSteps)
              base_seed: \(baseSeed)
              control_seed: \(controlSeed)
              continue_steps: \(continueSteps)
              continue_seed: \(continueSeed)
              continue_learning_rate: \(continueLearningRate)
              grown_width: \(grownWidth.map(String.init) ?? "null")
              grown_steps: \(grownSteps)
              grown_noise: \(grownNoise)
              lora_steps: \(loraSteps)
              seeds: \(list(seeds))
              lora_learning_rate: \(loraLearningRate)
              subspace_rank: \(subspaceRank.map(String.init) ?? "null")
              threshold: \(threshold.map { String($0) } ?? "null")
              subspace_ranks: \(list(extraSubspaceRanks))
              svd: \(svd.rawValue)
              evaluation_sequences: \(evaluationSequences)
              exact_match_examples: \(exactMatchExamples)

            """
    }
}
