import Foundation
import SubspaceAnalysis

/// The study's statistics over heads: Spearman ρ (average ranks) with a two-sided permutation p-value,
/// top-K overlaps against their chance level K/(L·H) with a one-sided permutation p-value, and
/// counter-example heads; per seed, then mean ± std over seeds with a verdict against chance.
public enum HeadsStatistics {
    /// The quantities compared, flattened [layer·H + head].
    public enum Quantity: String, Codable, Sendable, CaseIterable {
        case importanceBefore = "I_pre", importanceAfter = "I_post", updateRelative = "U_rel", plasticity = "P"
    }

    public struct Pair: Codable, Sendable, Equatable {
        public var x: String
        public var y: String
    }

    public struct Overlap: Codable, Sendable {
        public var fraction: Double
        public var k: Int
        public var overlap: Double
        public var chance: Double
        public var pValue: Double
    }

    public struct PairResult: Codable, Sendable {
        public var method: String
        public var x: String
        public var y: String
        public var spearman: Double?
        public var spearmanPValue: Double?
        public var overlaps: [Overlap]
    }

    public struct CounterExample: Codable, Sendable {
        public var kind: String
        public var layer: Int
        public var head: Int
        public var importanceBefore: Double
        public var plasticity: Double
        public var updateRelative: Double
    }

    public struct SeedStatistics: Codable, Sendable {
        public var seed: UInt64
        public var pairs: [PairResult]
        public var counterExamples: [String: [CounterExample]]
    }

    /// A statistic over seeds and whether it stands out from chance.
    public struct Aggregate: Codable, Sendable {
        public var method: String
        public var x: String
        public var y: String
        public var what: String
        public var fraction: Double?
        public var chance: Double
        public var value: Statistic
        public var pValues: [Double]
        /// "distinguishable from chance" when every seed's permutation p-value is below `alpha`, else
        /// "not distinguishable from chance".
        public var verdict: String
    }

    public struct Summary: Codable, Sendable {
        public var alpha: Double
        public var importance: String
        public var plasticity: String
        public var seeds: [SeedStatistics]
        public var aggregates: [Aggregate]
    }

    public static let alpha = 0.05

    /// The pairs the issue lists, per method, and the two FFT-vs-LoRA comparisons.
    static let withinMethod: [(Quantity, Quantity)] = [
        (.importanceBefore, .updateRelative), (.importanceBefore, .plasticity),
        (.plasticity, .updateRelative), (.importanceBefore, .importanceAfter),
    ]

    static func flat(_ grid: [[Double]]) -> [Double] { grid.flatMap { $0 } }

    static func values(_ q: Quantity, _ r: HeadsResults, _ m: HeadsResults.Method) -> [Double] {
        switch q {
        case .importanceBefore: flat(r.before.ablation ?? r.before.taylor)
        case .importanceAfter: flat(m.after.ablation ?? m.after.taylor)
        case .updateRelative: flat(m.update.relative)
        case .plasticity: flat(r.plasticity.fisher)
        }
    }

    static func compare(method: String, x: String, y: String, _ a: [Double], _ b: [Double], config: HeadsStudyConfig, seed: UInt64) -> PairResult {
        let n = a.count
        let rho = RankStatistics.spearman(a, b)
        let p = rho.map { _ in
            RankStatistics.permutationPValue(a, b, trials: config.permutations, seed: seed) { abs(RankStatistics.spearman($0, $1) ?? 0) }
        }
        let overlaps = config.topK.map { fraction -> Overlap in
            let k = max(1, Int((fraction * Double(n)).rounded()))
            let value = RankStatistics.topKOverlap(a, b, k: k)
            let pValue = RankStatistics.permutationPValue(a, b, trials: config.permutations, seed: seed &+ UInt64(k)) {
                RankStatistics.topKOverlap($0, $1, k: k)
            }
            return Overlap(fraction: fraction, k: k, overlap: value, chance: RankStatistics.topKChance(k: k, of: n), pValue: pValue)
        }
        return PairResult(method: method, x: x, y: y, spearman: rho, spearmanPValue: p, overlaps: overlaps)
    }

    public static func compute(_ r: HeadsResults, config: HeadsStudyConfig) -> Summary {
        let H = r.heads
        var perSeed: [SeedStatistics] = []
        for s in r.seeds {
            var pairs: [PairResult] = []
            for (name, m) in [("FFT", s.fft), ("LoRA", s.lora)] {
                for (x, y) in withinMethod {
                    pairs.append(compare(method: name, x: x.rawValue, y: y.rawValue, values(x, r, m), values(y, r, m), config: config, seed: s.seed))
                }
            }
            pairs.append(compare(method: "FFT vs LoRA", x: "U_rel FFT", y: "U_rel LoRA", flat(s.fft.update.relative),
                                 flat(s.lora.update.relative), config: config, seed: s.seed))
            pairs.append(compare(method: "FFT vs LoRA", x: "I_post FFT", y: "I_post LoRA", values(.importanceAfter, r, s.fft),
                                 values(.importanceAfter, r, s.lora), config: config, seed: s.seed))
            var counters: [String: [CounterExample]] = [:]
            for (name, m) in [("FFT", s.fft), ("LoRA", s.lora)] {
                let importance = values(.importanceBefore, r, m), update = values(.updateRelative, r, m), plastic = values(.plasticity, r, m)
                let n = importance.count
                let high = max(1, Int((config.counterHigh * Double(n)).rounded()))
                let low = max(1, Int((config.counterLow * Double(n)).rounded()))
                func top(_ v: [Double]) -> Set<Int> { Set(RankStatistics.topK(v, high)) }
                func bottom(_ v: [Double]) -> Set<Int> { Set(RankStatistics.topK(v.map { -$0 }, low)) }
                func example(_ kind: String, _ i: Int) -> CounterExample {
                    CounterExample(kind: kind, layer: i / H, head: i % H, importanceBefore: importance[i], plasticity: plastic[i], updateRelative: update[i])
                }
                counters[name] = top(importance).intersection(bottom(update)).sorted().map { example("important but static", $0) }
                    + top(plastic).intersection(bottom(importance)).sorted().map { example("plastic but unimportant", $0) }
            }
            perSeed.append(SeedStatistics(seed: s.seed, pairs: pairs, counterExamples: counters))
        }
        // Over seeds: the same (method, x, y) entries in the same order in every seed.
        var aggregates: [Aggregate] = []
        if let first = perSeed.first {
            for (i, pair) in first.pairs.enumerated() {
                let all = perSeed.map { $0.pairs[i] }
                let rhos = all.compactMap(\.spearman), ps = all.compactMap(\.spearmanPValue)
                if let value = Statistic(rhos) {
                    aggregates.append(Aggregate(method: pair.method, x: pair.x, y: pair.y, what: "spearman", fraction: nil, chance: 0,
                                                value: value, pValues: ps, verdict: verdict(ps, count: all.count)))
                }
                for (j, o) in pair.overlaps.enumerated() {
                    let values = all.map { $0.overlaps[j].overlap }, ps = all.map { $0.overlaps[j].pValue }
                    aggregates.append(Aggregate(method: pair.method, x: pair.x, y: pair.y, what: "top-\(Int((o.fraction * 100).rounded()))% overlap",
                                                fraction: o.fraction, chance: o.chance, value: Statistic(values)!, pValues: ps,
                                                verdict: verdict(ps, count: all.count)))
                }
            }
        }
        return Summary(alpha: alpha, importance: r.before.ablation == nil ? "taylor" : "ablation", plasticity: "fisher of the gate gradient",
                       seeds: perSeed, aggregates: aggregates)
    }

    static func verdict(_ ps: [Double], count: Int) -> String {
        ps.count == count && !ps.isEmpty && ps.allSatisfy({ $0 < alpha }) ? "distinguishable from chance" : "not distinguishable from chance"
    }
}
