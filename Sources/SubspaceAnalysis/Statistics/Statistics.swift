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

/// Whether two methods' seed results differ by more than their noise: Welch's two-sample t-test.
public struct SeedComparison: Sendable, Codable, Equatable {
    public enum Verdict: String, Sendable, Codable { case lower, higher, notDistinguishable = "not distinguishable", tooFewSeeds = "too few seeds" }

    /// mean(a) − mean(b).
    public var difference: Double
    /// Welch's standard error of the difference.
    public var standardError: Double
    /// Welch's t statistic (difference / standardError; ±∞ when the spreads are zero and the means differ).
    public var t: Double
    /// Welch–Satterthwaite degrees of freedom (nil with fewer than two values on a side, or no spread on either).
    public var degreesOfFreedom: Double?
    /// Two-sided p-value of t against Student's t with `degreesOfFreedom` (scipy's
    /// `ttest_ind(equal_var=False)`); 0 when both spreads are zero and the means differ, 1 when nothing differs.
    public var pValue: Double?
    /// How a's mean stands against b's: lower / higher only when p < `alpha` with ≥ 2 values each.
    public var verdict: Verdict

    /// The default level: a two-sided 5% test. With three seeds a side, Welch's test has 2–4 degrees of
    /// freedom, so this needs |t| ≳ 2.8–4.3 — a fixed |t| ≥ 2 bar would call one pair of identical
    /// methods in eight to six "different".
    public static let defaultAlpha = 0.05

    public init(_ a: Statistic, _ b: Statistic, alpha: Double = SeedComparison.defaultAlpha) {
        difference = a.mean - b.mean
        let va = a.standardError * a.standardError, vb = b.standardError * b.standardError
        standardError = (va + vb).squareRoot()
        if standardError > 0 { t = difference / standardError } else { t = difference == 0 ? 0 : (difference > 0 ? .infinity : -.infinity) }
        guard a.values.count >= 2, b.values.count >= 2 else {
            verdict = .tooFewSeeds
            return
        }
        if standardError > 0 {
            let na = Double(a.values.count), nb = Double(b.values.count)
            let df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1))
            degreesOfFreedom = df
            pValue = StudentT.twoSidedPValue(t: t, degreesOfFreedom: df)
        } else {
            pValue = difference == 0 ? 1 : 0
        }
        verdict = pValue! < alpha ? (difference < 0 ? .lower : .higher) : .notDistinguishable
    }
}

extension SeedComparison {
    /// "t = -3.0, p = 0.041" (p to three decimals, "p < 0.001" below); the p part only when there is one.
    public var testSummary: String {
        let tText = String(format: "t = %.1f", t)
        guard let pValue else { return tText }
        return tText + ", " + SeedComparison.pText(pValue)
    }
    /// Half the width of the two-sided `level` confidence interval of the difference (Welch's degrees of
    /// freedom); nil when there are none (fewer than two values a side, or no spread).
    public func confidenceHalfWidth(level: Double = 0.95) -> Double? {
        degreesOfFreedom.map { StudentT.twoSidedCritical(alpha: 1 - level, degreesOfFreedom: $0) * standardError }
    }
    /// "0.041", or "< 0.001" below that.
    static func pNumber(_ p: Double) -> String { p < 0.001 ? "< 0.001" : String(format: "%.3f", p) }
    /// "p = 0.041", or "p < 0.001".
    public static func pText(_ p: Double) -> String { "p " + (p < 0.001 ? "" : "= ") + pNumber(p) }
    /// The p-value as a table cell ("–" when there is none).
    public var pCell: String { pValue.map(SeedComparison.pNumber) ?? "–" }
}

/// Student's t distribution, for p-values of t statistics.
public enum StudentT {
    /// P(|T| ≥ |t|) for T with `degreesOfFreedom` (> 0, not necessarily whole): I_x(ν/2, 1/2), x = ν/(ν + t²).
    public static func twoSidedPValue(t: Double, degreesOfFreedom nu: Double) -> Double {
        precondition(nu > 0, "degrees of freedom \(nu)")
        if t.isNaN { return .nan }
        if t.isInfinite { return 0 }
        return regularizedIncompleteBeta(x: nu / (nu + t * t), a: nu / 2, b: 0.5)
    }

    /// The t with P(|T| ≥ t) = `alpha` (e.g. 2.776 for alpha 0.05 at 4 degrees of freedom), by bisection.
    public static func twoSidedCritical(alpha: Double, degreesOfFreedom nu: Double) -> Double {
        precondition(alpha > 0 && alpha < 1, "alpha \(alpha)")
        var (lo, hi) = (0.0, 1.0)
        while twoSidedPValue(t: hi, degreesOfFreedom: nu) > alpha { hi *= 2 }
        for _ in 0..<200 where hi - lo > 1e-13 * hi {
            let mid = (lo + hi) / 2
            if twoSidedPValue(t: mid, degreesOfFreedom: nu) > alpha { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// I_x(a, b) by its continued fraction (modified Lentz), on the side where it converges fast.
    static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logBeta: Double = lgamma(a) + lgamma(b) - lgamma(a + b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let logFront = logPowers - logBeta
        if x < (a + 1) / (a + b + 2) {
            return exp(logFront) * continuedFraction(x: x, a: a, b: b) / a
        }
        return 1 - exp(logFront) * continuedFraction(x: 1 - x, a: b, b: a) / b
    }

    private static func continuedFraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        func guarded(_ v: Double) -> Double { abs(v) < tiny ? tiny : v }
        var c = 1.0, d = 1 / guarded(1 - (a + b) * x / (a + 1)), h = d
        for m in 1...300 {
            let m = Double(m), m2 = 2 * m
            var term = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
            d = 1 / guarded(1 + term * d); c = guarded(1 + term / c); h *= d * c
            term = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
            d = 1 / guarded(1 + term * d); c = guarded(1 + term / c)
            let step = d * c
            h *= step
            if abs(step - 1) < 1e-15 { break }
        }
        return h
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
