import Foundation
import SubspaceModel
import SubspaceTraining
import SubspaceAnalysis
import Yams

/// The `study:` section of configs/lora-null.yaml; every other section is the fine-tuning `TrainConfig`
/// (the SFT task), shared by all methods (the study sets model.path, lora and the learning rate per run).
public struct LoRANullStudySettings: Sendable, Equatable {
    public enum Method: String, Sendable, CaseIterable, Codable {
        case full, lora, null, v1, v2
        public var variant: LoRANullVariant? { LoRANullVariant(rawValue: rawValue) }
    }
    /// An HF folder to fine-tune; nil: pre-train one with `base_config` (+ `base_overrides`).
    public var baseModel: String? = nil
    public var baseConfig = "configs/base.yaml"
    public var baseOverrides: [String] = []
    /// Token-shard folder of the pre-training corpus: calibration (train split) and forgetting (validation split).
    public var corpus = "data/shakespeare"
    public var methods: [Method] = Method.allCases
    public var rank = 8
    public var alpha: Float = 8
    /// PEFT target_modules; nil: every linear projection of the blocks.
    public var targets: [String]? = nil
    public var covariance: CovarianceEstimator = .scaled
    public var calibrationSequences = 64
    public var forgettingSequences = 64
    /// Starting learning-rate grids per method.
    public var learningRates: [Method: [Double]] = [.full: [1e-4, 3e-4, 1e-3], .lora: [1e-3, 3e-3, 1e-2],
                                                    .null: [1e-3, 3e-3, 1e-2], .v1: [1e-3, 3e-3, 1e-2], .v2: [1e-3, 3e-3, 1e-2]]
    public var maxExtensions = 2
    public var seeds: [UInt64] = [1, 2, 3]

    public init() {}

    static let keys = ["base_model", "base_config", "base_overrides", "corpus", "methods", "rank", "alpha", "targets", "covariance",
                       "calibration_sequences", "forgetting_sequences", "learning_rates", "max_extensions", "seeds"]

    public func sweep(_ m: Method) -> SweepSettings { SweepSettings(learningRates: learningRates[m] ?? [1e-3], maxExtensions: maxExtensions, seeds: seeds) }
}

public struct LoRANullStudyConfig: Sendable {
    public var train: TrainConfig
    /// The training sections as YAML (what each run's config file holds).
    public var trainYAML: String
    public var study: LoRANullStudySettings

    public static func load(path: String, overrides: [String] = []) throws -> LoRANullStudyConfig {
        let yaml = try TrainConfig.readYAML(path: path)
        let (trainYAML, node) = try QKFreezeStudyConfig.split(yaml: yaml, source: path)
        let isStudy: (String) -> Bool = { $0.hasPrefix("study.") }
        let train = try TrainConfig.load(yaml: trainYAML, source: path, overrides: overrides.filter { !isStudy($0) })
        var values: [(String, Node, ConfigOrigin)] = []
        if let node {
            guard case .mapping(let mapping) = node else {
                throw ConfigError(.value, source: path, key: "study", "must be a mapping of study keys")
            }
            for (k, v) in mapping { values.append((k.scalar?.string ?? "", v, ConfigOrigin(source: path, line: k.mark?.line))) }
        }
        for o in overrides where isStudy(o) {
            guard let eq = o.firstIndex(of: "=") else { throw ConfigError(.override, source: "--set \(o)", key: nil, "expected study.key=value") }
            let key = String(o[o.index(o.startIndex, offsetBy: 6)..<eq])
            let node = (try? Yams.compose(yaml: String(o[o.index(after: eq)...]))) ?? nil
            values.append((key, node ?? Node("null"), ConfigOrigin(source: "--set \(o)", line: nil)))
        }
        var s = LoRANullStudySettings()
        for (key, node, origin) in values {
            guard LoRANullStudySettings.keys.contains(key) else {
                let hint = ConfigSuggestion.closest(to: key, among: LoRANullStudySettings.keys).map { "; did you mean study.\($0)?" } ?? ""
                throw ConfigError(.unknownKey, source: origin.source, line: origin.line, key: "study.\(key)", "unknown key\(hint)")
            }
            let v = ConfigValue(key: "study.\(key)", node: node, origin: origin)
            func fail(_ m: String) -> ConfigError { ConfigError(.value, source: origin.source, line: origin.line, key: "study.\(key)", m) }
            func list(_ n: Node) -> [Node] { if case .sequence(let q) = n { return Array(q) } else { return [n] } }
            switch key {
            case "base_model": s.baseModel = v.isNull ? nil : try v.text()
            case "base_config": s.baseConfig = try v.text()
            case "base_overrides": s.baseOverrides = v.isNull ? [] : try v.texts("a list of key=value overrides")
            case "corpus": s.corpus = try v.text()
            case "methods":
                // Read the scalars' text: the method `null` is YAML's null when unquoted.
                s.methods = try list(node).map { n in
                    guard let name = n.scalar?.string else { throw fail("a list of methods (full, lora, null, v1, v2)") }
                    guard let m = LoRANullStudySettings.Method(rawValue: name) else { throw fail("'\(name)' is not one of full, lora, null, v1, v2") }
                    return m
                }
                if s.methods.isEmpty || Set(s.methods).count != s.methods.count { throw fail("needs distinct methods") }
            case "rank": s.rank = try v.int(IntRule(min: 1))
            case "alpha": s.alpha = try v.number(.positive)
            case "targets": s.targets = v.isNull ? nil : try v.texts("a list of module names")
            case "covariance":
                guard let c = CovarianceEstimator(rawValue: try v.text()) else { throw fail("scaled or plain") }
                s.covariance = c
            case "calibration_sequences": s.calibrationSequences = try v.int(IntRule(min: 1))
            case "forgetting_sequences": s.forgettingSequences = try v.int(IntRule(min: 1))
            case "max_extensions": s.maxExtensions = try v.int(IntRule(min: 0, max: 8))
            case "seeds":
                s.seeds = try list(node).map { try ConfigValue(key: v.key, node: $0, origin: origin).seed() }
                if s.seeds.isEmpty || Set(s.seeds).count != s.seeds.count { throw fail("needs distinct seeds") }
            case "learning_rates":
                guard case .mapping(let m) = node else { throw fail("a mapping method: [rates]") }
                for (k, rates) in m {
                    guard let method = LoRANullStudySettings.Method(rawValue: k.scalar?.string ?? "") else { throw fail("'\(k.scalar?.string ?? "")' is not a method") }
                    s.learningRates[method] = try list(rates).map { try ConfigValue(key: "\(v.key).\(method.rawValue)", node: $0, origin: origin).number(.positive) }
                }
            default: break
            }
        }
        for m in s.methods {
            if let p = s.sweep(m).problems(prefix: "study.learning_rates.\(m.rawValue)").first { throw ConfigError(.value, source: path, key: "study", p) }
        }
        return LoRANullStudyConfig(train: train, trainYAML: trainYAML, study: s)
    }
}
