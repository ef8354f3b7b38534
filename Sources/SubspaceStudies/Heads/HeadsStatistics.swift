import Foundation
import SubspaceAnalysis

/// The study's statistics over heads: Spearman ρ (average ranks) with a two-sided permutation p-value,
/// top-K overlaps against their chance level K/(L·H) with a one-sided permutation p-value, and
/// counter-example heads; per seed, then mean ± std over seeds with a verdict against chance.
///
/// I_pre and P are both measured on the base model, the same for every seed and both methods, so the
/// statistics between them (and the 'plastic but unimportant' heads) are computed once, as method
/// "base": one measurement with one permutation p-value. Repeating it per seed would only redraw the
/// permutations and present one measurement as three replications.
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
        /// nil for 'plastic but unimportant', a property of the base alone.
        public var updateRelative: Double?
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
        /// Every seed's permutation p-value is below `alpha` (and every seed has one).
        public var distinguishable: Bool
        /// `distinguishable` in words: "distinguishable from chance" or "not distinguishable from chance",
        /// with a note when the statistic is one measurement of the base.
        public var verdict: String

        init(method: String, x: String, y: String, what: String, fraction: Double?, chance: Double, value: Statistic,
             pValues: [Double], seeds: Int) {
            (self.method, self.x, self.y, self.what, self.fraction, self.chance, self.value, self.pValues) =
                (method, x, y, what, fraction, chance, value, pValues)
            distinguishable = pValues.count == seeds && !pValues.isEmpty && pValues.allSatisfy { $0 < alpha }
            verdict = (distinguishable ? "distinguishable from chance" : "not distinguishable from chance")
                + (method == baseMethod ? " (one measurement of the base, not replicated by seeds)" : "")
        }
    }

    public struct Summary: Codable, Sendable {
        public var alpha: Double
        public var importance: String
        public var plasticity: String
        public var seeds: [SeedStatistics]
        /// The statistics of base-only pairs (I_pre vs P), computed once.
        public var base: [PairResult]
        /// Heads of the base in the top fraction by P and the bottom one by I_pre, found once.
        public var baseCounterExamples: [CounterExample]
        public var aggregates: [Aggregate]
    }

    public static let alpha = 0.05

    /// The pairs the issue lists: per method and seed those that involve training, once those of the base
    /// alone; and the two FFT-vs-LoRA comparisons.
    static let withinMethod: [(Quantity, Quantity)] = [
        (.importanceBefore, .updateRelative), (.plasticity, .updateRelative), (.importanceBefore, .importanceAfter),
    ]
    static let baseOnly: [(Quantity, Quantity)] = [(.importanceBefore, .plasticity)]
    /// The method name of the base-only statistics.
    public static let baseMethod = "base"

    static func flat(_ grid: [[Double]]) -> [Double] { grid.flatMap { $0 } }

    static func values(_ q: Quantity, _ r: HeadsResults, _ m: HeadsResults.Method) -> [Double] {
        switch q {
        case .importanceAfter: flat(m.after.ablation ?? m.after.taylor)
        case .updateRelative: flat(m.update.relative)
        case .importanceBefore, .plasticity: baseValues(q, r)
        }
    }

    static func baseValues(_ q: Quantity, _ r: HeadsResults) -> [Double] {
        switch q {
        case .importanceBefore: flat(r.before.ablation ?? r.before.taylor)
        case .plasticity: flat(r.plasticity.fisher)
        case .importanceAfter, .updateRelative: preconditionFailure("\(q) is measured per trained model")
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
        let importance = baseValues(.importanceBefore, r), plastic = baseValues(.plasticity, r), n = importance.count
        let high = max(1, Int((config.counterHigh * Double(n)).rounded()))
        let low = max(1, Int((config.counterLow * Double(n)).rounded()))
        func top(_ v: [Double]) -> Set<Int> { Set(RankStatistics.topK(v, high)) }
        func bottom(_ v: [Double]) -> Set<Int> { Set(RankStatistics.topK(v.map { -$0 }, low)) }
        // Permutations of the base pairs drawn with the first seed's stream (any fixed seed would do).
        let baseSeed = r.seeds.first?.seed ?? 1
        let base = baseOnly.map { x, y in
            compare(method: baseMethod, x: x.rawValue, y: y.rawValue, baseValues(x, r), baseValues(y, r), config: config, seed: baseSeed)
        }
        let baseCounters = top(plastic).intersection(bottom(importance)).sorted().map {
            CounterExample(kind: "plastic but unimportant", layer: $0 / H, head: $0 % H, importanceBefore: importance[$0],
                           plasticity: plastic[$0], updateRelative: nil)
        }
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
                let update = values(.updateRelative, r, m)
                counters[name] = top(importance).intersection(bottom(update)).sorted().map { i in
                    CounterExample(kind: "important but static", layer: i / H, head: i % H, importanceBefore: importance[i],
                                   plasticity: plastic[i], updateRelative: update[i])
                }
            }
            perSeed.append(SeedStatistics(seed: s.seed, pairs: pairs, counterExamples: counters))
        }
        // Over seeds: the same (method, x, y) entries in the same order in every seed; the base pairs once.
        let seedGroups = (perSeed.first?.pairs.indices ?? 0..<0).map { i in perSeed.map { $0.pairs[i] } }
        var aggregates: [Aggregate] = []
        for all in seedGroups + base.map({ [$0] }) {
            let pair = all[0]
            let rhos = all.compactMap(\.spearman), ps = all.compactMap(\.spearmanPValue)
            if let value = Statistic(rhos) {
                aggregates.append(Aggregate(method: pair.method, x: pair.x, y: pair.y, what: "spearman", fraction: nil, chance: 0,
                                            value: value, pValues: ps, seeds: all.count))
            }
            for (j, o) in pair.overlaps.enumerated() {
                let values = all.map { $0.overlaps[j].overlap }, ps = all.map { $0.overlaps[j].pValue }
                aggregates.append(Aggregate(method: pair.method, x: pair.x, y: pair.y, what: "top-\(Int((o.fraction * 100).rounded()))% overlap",
                                            fraction: o.fraction, chance: o.chance, value: Statistic(values)!, pValues: ps,
                                            seeds: all.count))
            }
        }
        return Summary(alpha: alpha, importance: r.before.ablation == nil ? "taylor" : "ablation", plasticity: "fisher of the gate gradient",
                       seeds: perSeed, base: base, baseCounterExamples: baseCounters, aggregates: aggregates)
    }

}
