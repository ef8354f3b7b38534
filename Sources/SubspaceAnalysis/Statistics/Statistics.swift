import Foundation
import SubspaceCore

/// Mean and sample standard deviation (n − 1; 0 for one value) of a quantity over seeds.
public struct Statistic: Sendable, Codable, Equatable {
    public var mean: Double
    public var std: Double
    public var values: [Double]

    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.count > 1 ? values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1) : 0
        self.mean = mean
        self.std = variance.squareRoot()
        self.values = values
    }

    /// Standard error of the mean (0 for one value).
    public var standardError: Double { values.count > 1 ? std / Double(values.count).squareRoot() : 0 }

    /// "1.234 ± 0.056" with `digits` decimals (the ± part only when there is more than one value).
    public func formatted(_ digits: Int = 3) -> String {
        let f = "%.\(digits)f"
        return values.count > 1 ? String(format: f + " ± " + f, mean, std) : String(format: f, mean)
    }
}

/// Whether two methods' seed results differ by more than their noise.
public struct SeedComparison: Sendable, Codable, Equatable {
    public enum Verdict: String, Sendable, Codable { case lower, higher, notDistinguishable = "not distinguishable", tooFewSeeds = "too few seeds" }

    /// mean(a) − mean(b).
    public var difference: Double
    /// Welch's standard error of the difference.
    public var standardError: Double
    /// Welch's t statistic (difference / standardError; ±∞ when the spreads are zero and the means differ).
    public var t: Double
    /// How a's mean stands against b's: lower / higher only when |t| ≥ `threshold` with ≥ 2 values each.
    public var verdict: Verdict

    /// The default bar, |t| ≥ 2: roughly a 95% two-sided test for a handful of seeds' worth of noise —
    /// conservative enough that two identical methods rarely get a verdict other than "not distinguishable".
    public static let defaultThreshold = 2.0

    public init(_ a: Statistic, _ b: Statistic, threshold: Double = SeedComparison.defaultThreshold) {
        difference = a.mean - b.mean
        standardError = (a.standardError * a.standardError + b.standardError * b.standardError).squareRoot()
        if standardError > 0 { t = difference / standardError } else { t = difference == 0 ? 0 : (difference > 0 ? .infinity : -.infinity) }
        if a.values.count < 2 || b.values.count < 2 {
            verdict = .tooFewSeeds
        } else if abs(t) >= threshold {
            verdict = difference < 0 ? .lower : .higher
        } else {
            verdict = .notDistinguishable
        }
    }
}

/// Rank statistics and permutation tests, for comparing per-module or per-head quantities.
public enum RankStatistics {
    /// Ranks 1…n of `values` in ascending order, ties given the average of the ranks they span.
    public static func averageRanks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count, values[order[j + 1]] == values[order[i]] { j += 1 }
            let average = Double(i + j) / 2 + 1
            for k in i...j { ranks[order[k]] = average }
            i = j + 1
        }
        return ranks
    }

    /// Pearson's correlation; nil when either side is constant or the lengths differ or are < 2.
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double? {
        guard x.count == y.count, x.count >= 2 else { return nil }
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices {
            let dx = x[i] - mx, dy = y[i] - my
            sxy += dx * dy; sxx += dx * dx; syy += dy * dy
        }
        guard sxx > 0, syy > 0 else { return nil }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Spearman's ρ: Pearson's correlation of the average ranks (scipy.stats.spearmanr's definition).
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double? {
        pearson(averageRanks(x), averageRanks(y))
    }

    /// Indices of the `k` largest values (ties broken by index, so the result is deterministic).
    public static func topK(_ values: [Double], _ k: Int) -> [Int] {
        Array(values.indices.sorted { values[$0] != values[$1] ? values[$0] > values[$1] : $0 < $1 }.prefix(k))
    }

    /// |top-k(x) ∩ top-k(y)| / k.
    public static func topKOverlap(_ x: [Double], _ y: [Double], k: Int) -> Double {
        guard k > 0 else { return 0 }
        return Double(Set(topK(x, k)).intersection(topK(y, k)).count) / Double(k)
    }

    /// The expected overlap of two independent random top-k sets out of n: k / n.
    public static func topKChance(k: Int, of n: Int) -> Double { n > 0 ? Double(k) / Double(n) : 0 }

    /// One-sided permutation p-value of `statistic(x, y)` being at least as large as observed, with y
    /// shuffled `trials` times by a seeded stream; (count + 1) / (trials + 1), so never 0.
    public static func permutationPValue(_ x: [Double], _ y: [Double], trials: Int = 2000, seed: UInt64 = 0,
                                         statistic: ([Double], [Double]) -> Double) -> Double {
        let observed = statistic(x, y)
        var rng = RandomStream(seed: seed, stream: 0x5045_524D)  // "PERM"
        var shuffled = y
        var atLeast = 0
        for _ in 0..<trials {
            // Fisher–Yates with the project's own stream, so p-values repeat across platforms.
            for i in stride(from: shuffled.count - 1, to: 0, by: -1) {
                shuffled.swapAt(i, rng.nextInt(below: i + 1))
            }
            if statistic(x, shuffled) >= observed - 1e-12 { atLeast += 1 }
        }
        return Double(atLeast + 1) / Double(trials + 1)
    }
}
