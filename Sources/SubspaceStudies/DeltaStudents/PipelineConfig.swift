import Foundation
import Yams

/// `configs/pipeline.yaml`: where each stage reads and writes, and the configs of the training stages.
public struct PipelineConfig: Sendable {
    public struct Stage: Sendable { public var config: String; public var overrides: [String] }

    public var output = "runs/pipeline"
    public var corpusText = "data/shakespeare-text", corpusShards = "data/shakespeare", tokenizer = "bytes"
    public var validationFraction = 0.1
    public var sftPath = "data/sft", sftSeed: UInt64 = 1, sftTrain = 2000, sftTest = 200
    public var base = Stage(config: "configs/base.yaml", overrides: [])
    public var teacher = Stage(config: "configs/teacher.yaml", overrides: [])
    public var students = Stage(config: "configs/student-lora.yaml", overrides: [])
    public var initialisations = ["random", "svd-delta"]
    /// The students' learning-rate grid ([]: the students config's rate only, no sweep).
    public var learningRates: [Double] = []
    /// The teacher's own learning-rate grid: a fine-tuning rate, tuned like every other method's.
    public var teacherLearningRates: [Double] = []
    /// Grid points a sweep may add past an edge while the best rate sits there (per side).
    public var maxExtensions = 2
    /// Every compared run (teacher and students) repeats over these seeds; tables give mean ± std.
    public var seeds: [UInt64] = [1]
    /// Optimizer steps for the teacher and every student alike (nil: each config's own, and the
    /// comparison marks runs whose budget differs).
    public var budgetSteps: Int? = nil
    /// LoRA ranks for a rank study ([]: the students config's rank only).
    public var ranks: [Int] = []
    public var analysisRank = 8, analysisMethod = "full"
    public var targetLoss: Double? = nil

    public struct Problem: Error, CustomStringConvertible { public let description: String }

    /// Reads the file strictly: unknown sections or keys and wrong types are errors naming the key.
    public static func load(path: String) throws -> PipelineConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Problem(description: "\(path): cannot read") }
        let root: [String: Any]
        do {
            guard let parsed = try Yams.load(yaml: text) as? [String: Any] else { throw Problem(description: "\(path): not a YAML mapping") }
            root = parsed
        } catch let p as Problem { throw p } catch { throw Problem(description: "\(path): \(error)") }
        var c = PipelineConfig()
        func fail(_ key: String, _ why: String) -> Problem { Problem(description: "\(path): '\(key)': \(why)") }
        func section(_ name: String, _ keys: Set<String>) throws -> [String: Any] {
            guard let raw = root[name] else { return [:] }
            guard let d = raw as? [String: Any] else { throw fail(name, "must be a mapping") }
            if let bad = d.keys.first(where: { !keys.contains($0) }) { throw fail("\(name).\(bad)", "unknown key (valid: \(keys.sorted().joined(separator: ", ")))") }
            return d
        }
        let known: Set<String> = ["output", "seeds", "budget", "corpus", "sft", "base", "teacher", "students", "analysis", "compare"]
        if let bad = root.keys.first(where: { !known.contains($0) }) { throw fail(bad, "unknown section (valid: \(known.sorted().joined(separator: ", ")))") }
        func string(_ d: [String: Any], _ s: String, _ k: String) throws -> String? {
            guard let v = d[k] else { return nil }
            guard let x = v as? String else { throw fail("\(s).\(k)", "must be a string, got \(v)") }
            return x
        }
        func int(_ d: [String: Any], _ s: String, _ k: String) throws -> Int? {
            guard let v = d[k] else { return nil }
            guard let x = v as? Int, x >= 0 else { throw fail("\(s).\(k)", "must be a non-negative integer, got \(v)") }
            return x
        }
        func stage(_ name: String, extra: Set<String> = []) throws -> Stage? {
            let d = try section(name, Set(["config", "set"]).union(extra))
            if d.isEmpty { return nil }
            guard let config = try string(d, name, "config") else { throw fail("\(name).config", "missing") }
            let overrides = (d["set"] as? [Any])?.map { "\($0)" } ?? []
            if d["set"] != nil && d["set"] as? [Any] == nil { throw fail("\(name).set", "must be a list of key=value strings") }
            return Stage(config: config, overrides: overrides)
        }
        if let o = root["output"] { guard let s = o as? String else { throw fail("output", "must be a string") }; c.output = s }
        let corpus = try section("corpus", ["text", "shards", "tokenizer", "validation_fraction"])
        c.corpusText = try string(corpus, "corpus", "text") ?? c.corpusText
        c.corpusShards = try string(corpus, "corpus", "shards") ?? c.corpusShards
        c.tokenizer = try string(corpus, "corpus", "tokenizer") ?? c.tokenizer
        if let f = corpus["validation_fraction"] {
            guard let v = (f as? Double) ?? (f as? Int).map(Double.init), v > 0, v < 1 else { throw fail("corpus.validation_fraction", "must be in (0, 1)") }
            c.validationFraction = v
        }
        let sft = try section("sft", ["path", "seed", "train", "test"])
        c.sftPath = try string(sft, "sft", "path") ?? c.sftPath
        c.sftSeed = UInt64(try int(sft, "sft", "seed") ?? Int(c.sftSeed))
        c.sftTrain = try int(sft, "sft", "train") ?? c.sftTrain
        c.sftTest = try int(sft, "sft", "test") ?? c.sftTest
        c.base = try stage("base") ?? c.base
        func rates(_ raw: Any?, _ key: String) throws -> [Double]? {
            guard let raw else { return nil }
            guard let list = raw as? [Any], let values = Optional(list.compactMap { ($0 as? Double) ?? ($0 as? Int).map(Double.init) }),
                  values.count == list.count, values.allSatisfy({ $0 > 0 && $0.isFinite }), Set(values).count == values.count else {
                throw fail(key, "must be a list of distinct positive numbers")
            }
            return values.sorted()
        }
        if let raw = root["seeds"] {
            guard let list = raw as? [Int], !list.isEmpty, list.allSatisfy({ $0 >= 0 }), Set(list).count == list.count else {
                throw fail("seeds", "must be a non-empty list of distinct non-negative integers")
            }
            c.seeds = list.map { UInt64($0) }
        }
        let budget = try section("budget", ["steps"])
        if let steps = try int(budget, "budget", "steps") {
            guard steps >= 1 else { throw fail("budget.steps", "must be ≥ 1") }
            c.budgetSteps = steps
        }
        let teacherSection = try section("teacher", ["config", "set", "learning_rates"])
        c.teacher = try stage("teacher", extra: ["learning_rates"]) ?? c.teacher
        c.teacherLearningRates = try rates(teacherSection["learning_rates"], "teacher.learning_rates") ?? []
        let studentSection = try section("students", ["config", "set", "initialisations", "learning_rates", "ranks", "max_extensions"])
        c.students = try stage("students", extra: ["initialisations", "learning_rates", "ranks", "max_extensions"]) ?? c.students
        if let e = try int(studentSection, "students", "max_extensions") {
            guard e <= 8 else { throw fail("students.max_extensions", "must be in 0...8") }
            c.maxExtensions = e
        }
        if let ranks = studentSection["ranks"] {
            guard let list = ranks as? [Int], list.allSatisfy({ $0 >= 1 }) else { throw fail("students.ranks", "must be a list of positive integers") }
            c.ranks = list
        }
        if let inits = studentSection["initialisations"] {
            guard let list = inits as? [String], !list.isEmpty,
                  list.allSatisfy({ ["random", "svd-delta", "pissa"].contains($0) }) else {
                throw fail("students.initialisations", "must be a non-empty list of random, svd-delta, pissa")
            }
            c.initialisations = list
        }
        c.learningRates = try rates(studentSection["learning_rates"], "students.learning_rates") ?? []
        let analysis = try section("analysis", ["rank", "method"])
        c.analysisRank = try int(analysis, "analysis", "rank") ?? c.analysisRank
        guard c.analysisRank >= 1 else { throw fail("analysis.rank", "must be ≥ 1") }
        if let r = c.ranks.max(), r > c.analysisRank, c.initialisations.contains("svd-delta") {
            throw fail("students.ranks", "\(r) exceeds analysis.rank (\(c.analysisRank)): svd-delta students take the leading r of the R factors")
        }
        if Set(c.ranks).count != c.ranks.count { throw fail("students.ranks", "values repeat") }
        c.analysisMethod = try string(analysis, "analysis", "method") ?? c.analysisMethod
        guard ["full", "randomized"].contains(c.analysisMethod) else { throw fail("analysis.method", "must be full or randomized") }
        let compare = try section("compare", ["target_loss"])
        if let t = compare["target_loss"], !(t is NSNull) {
            guard let v = (t as? Double) ?? (t as? Int).map(Double.init), v > 0 else { throw fail("compare.target_loss", "must be a positive number or null") }
            c.targetLoss = v
        }
        return c
    }
}
