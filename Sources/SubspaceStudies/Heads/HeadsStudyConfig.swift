import Foundation
import SubspaceTraining
import Yams

/// configs/heads.yaml: what the heads study trains and measures. Each run is a training config file
/// plus `--set` overrides (as in the pipeline config); the study adds the base model, the SFT data and
/// the seed.
public struct HeadsStudyConfig: Sendable, Equatable {
    /// A training run: config file and overrides.
    public struct Run: Sendable, Equatable {
        public var config: String
        public var set: [String]
        /// The method's own learning-rate grid (fft and lora only; log-spaced, `Sweep`): every rate trained
        /// with the first seed, extended one grid step past an edge while the best sits there (at most
        /// `maxExtensions` per side), the best by final validation loss then trained over every seed — those
        /// runs are the ones measured. Empty: the config's training.learning_rate, no sweep.
        public var learningRates: [Double] = []
        public var maxExtensions = 2
        public init(config: String, set: [String] = [], learningRates: [Double] = [], maxExtensions: Int = 2) {
            self.config = config
            self.set = set
            self.learningRates = learningRates
            self.maxExtensions = maxExtensions
        }
    }

    /// Study folder: runs, tables, stats.json, report.md, report.html.
    public var output = "runs/heads"
    /// An HF model folder to start from; nil: train `baseRun` into output/base.
    public var baseModel: String? = nil
    public var baseRun = Run(config: "configs/base.yaml")
    /// The SFT data folder (train.jsonl, test.jsonl); made with the default generator when missing.
    public var sftPath = "data/sft"
    public var sftSeed: UInt64 = 1
    public var sftTrain = 2000
    public var sftTest = 200
    public var fft = Run(config: "configs/teacher.yaml")
    public var lora = Run(config: "configs/student-lora.yaml")
    public var seeds: [UInt64] = [1, 2, 3]
    /// The fixed evaluation set: the first N sequences of test.jsonl (train.jsonl when there is none).
    public var evaluationSequences = 64
    /// Plasticity: the first N training sequences, at the base model.
    public var plasticitySequences = 128
    public var microBatch = 8
    /// Top-K fractions of the L·H heads.
    public var topK: [Double] = [0.05, 0.1, 0.2]
    public var permutations = 2000
    /// Counter-examples: "high" is the top `counterHigh` fraction, "low" the bottom `counterLow` fraction.
    public var counterHigh = 0.2
    public var counterLow = 0.5

    public init() {}

    static let keys: Set<String> = ["output", "base", "sft", "fft", "lora", "seeds", "evaluation_sequences", "plasticity_sequences",
                                    "micro_batch", "top_k", "permutations", "counter_examples"]

    public static func load(path: String, overrides: [String] = []) throws -> HeadsStudyConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(.unreadable, source: path, key: nil, "cannot read the study config")
        }
        return try load(yaml: text, source: path, overrides: overrides)
    }

    public static func load(yaml: String, source: String = "config", overrides: [String] = []) throws -> HeadsStudyConfig {
        var root: [String: Any]
        do {
            root = (try Yams.load(yaml: yaml) as? [String: Any]) ?? [:]
        } catch {
            throw ConfigError(.syntax, source: source, key: nil, "not valid YAML: \(error)")
        }
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else {
                throw ConfigError(.override, source: "--set \(o)", key: nil, "expected key=value (e.g. seeds=[1, 2])")
            }
            let path = o[..<eq].split(separator: ".").map(String.init)
            let value = try Yams.load(yaml: String(o[o.index(after: eq)...])) ?? NSNull()
            func put(_ dict: inout [String: Any], _ keys: ArraySlice<String>) {
                guard let first = keys.first else { return }
                if keys.count == 1 { dict[first] = value; return }
                var inner = dict[first] as? [String: Any] ?? [:]
                put(&inner, keys.dropFirst())
                dict[first] = inner
            }
            put(&root, path[...])
        }
        var c = HeadsStudyConfig()
        func fail(_ key: String, _ why: String) -> ConfigError { ConfigError(.type, source: source, key: key, why) }
        for key in root.keys where !keys.contains(key) {
            throw ConfigError(.unknownKey, source: source, key: key, "unknown key; expected one of \(keys.sorted().joined(separator: ", "))")
        }
        func int(_ v: Any?, _ key: String) throws -> Int? {
            guard let v, !(v is NSNull) else { return nil }
            guard let i = v as? Int else { throw fail(key, "expected an integer, got \(v)") }
            return i
        }
        func run(_ v: Any?, _ key: String, into r: inout Run) throws {
            guard let v else { return }
            guard let d = v as? [String: Any] else { throw fail(key, "expected a mapping with config and set") }
            let sweepKeys = ["learning_rates", "max_extensions"]
            for k in d.keys where !(["config", "set", "model"] + sweepKeys).contains(k) || (k == "model" && key != "base")
                || (sweepKeys.contains(k) && key == "base") {
                throw ConfigError(.unknownKey, source: source, key: "\(key).\(k)", "unknown key")
            }
            if let s = d["config"] as? String { r.config = s }
            if let s = d["set"] {
                guard let list = s as? [Any] else { throw fail("\(key).set", "expected a list of key=value strings") }
                r.set = list.map { "\($0)" }
            }
            if let v = d["learning_rates"], !(v is NSNull) {
                guard let list = (v as? [Any])?.map({ ($0 as? Double) ?? ($0 as? Int).map(Double.init) }), list.allSatisfy({ $0 != nil }) else {
                    throw fail("\(key).learning_rates", "expected a list of learning rates")
                }
                r.learningRates = list.map { $0! }
            }
            if let v = try int(d["max_extensions"], "\(key).max_extensions") { r.maxExtensions = v }
        }
        if let v = root["seeds"] {
            guard let list = v as? [Int], !list.isEmpty, list.allSatisfy({ $0 >= 0 }) else { throw fail("seeds", "expected a non-empty list of seeds") }
            guard Set(list).count == list.count else { throw fail("seeds", "values repeat, got \(list)") }
            c.seeds = list.map(UInt64.init)
        }
        if let v = root["output"] { guard let s = v as? String else { throw fail("output", "expected a path") }; c.output = s }
        try run(root["base"], "base", into: &c.baseRun)
        if let b = root["base"] as? [String: Any], let m = b["model"], !(m is NSNull) {
            guard let s = m as? String else { throw fail("base.model", "expected an HF model folder or null") }
            c.baseModel = s
        }
        if let v = root["sft"] {
            guard let d = v as? [String: Any] else { throw fail("sft", "expected a mapping (path, seed, train, test)") }
            for k in d.keys where !["path", "seed", "train", "test"].contains(k) {
                throw ConfigError(.unknownKey, source: source, key: "sft.\(k)", "unknown key")
            }
            if let s = d["path"] as? String { c.sftPath = s }
            if let s = try int(d["seed"], "sft.seed") { c.sftSeed = UInt64(s) }
            if let s = try int(d["train"], "sft.train") { c.sftTrain = s }
            if let s = try int(d["test"], "sft.test") { c.sftTest = s }
        }
        try run(root["fft"], "fft", into: &c.fft)
        try run(root["lora"], "lora", into: &c.lora)
        for (key, r) in [("fft", c.fft), ("lora", c.lora)] where !r.learningRates.isEmpty {
            if let p = sweep(r, seeds: c.seeds).problems(prefix: key).first { throw ConfigError(.value, source: source, key: key, p) }
        }
        if let v = try int(root["evaluation_sequences"], "evaluation_sequences") { c.evaluationSequences = v }
        if let v = try int(root["plasticity_sequences"], "plasticity_sequences") { c.plasticitySequences = v }
        if let v = try int(root["micro_batch"], "micro_batch") { c.microBatch = v }
        if let v = try int(root["permutations"], "permutations") { c.permutations = v }
        if let v = root["top_k"] {
            guard let list = (v as? [Any])?.compactMap({ ($0 as? Double) ?? ($0 as? Int).map(Double.init) }),
                  !list.isEmpty, list.allSatisfy({ $0 > 0 && $0 <= 1 }) else { throw fail("top_k", "expected fractions in (0, 1]") }
            c.topK = list
        }
        if let v = root["counter_examples"] {
            guard let d = v as? [String: Any], let high = d["high"] as? Double, let low = d["low"] as? Double,
                  high > 0, high < 1, low > 0, low < 1 else { throw fail("counter_examples", "expected {high: fraction, low: fraction}") }
            c.counterHigh = high
            c.counterLow = low
        }
        for (key, value) in [("evaluation_sequences", c.evaluationSequences), ("plasticity_sequences", c.plasticitySequences),
                             ("micro_batch", c.microBatch), ("permutations", c.permutations)] where value < 1 {
            throw fail(key, "must be ≥ 1, got \(value)")
        }
        return c
    }

    /// A method's sweep over the study's seeds.
    public static func sweep(_ r: Run, seeds: [UInt64]) -> SweepSettings {
        SweepSettings(learningRates: r.learningRates, maxExtensions: r.maxExtensions, seeds: seeds)
    }

    /// Everything that decides the measurements, for lineage digests.
    var measurementDescription: String {
        "eval=\(evaluationSequences) plasticity=\(plasticitySequences) micro=\(microBatch)"
    }
}
