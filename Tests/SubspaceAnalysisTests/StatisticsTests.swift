import Testing
@testable import SubspaceAnalysis

/// Against scipy.stats (1.17): rankdata, spearmanr, pearsonr, ttest_ind(equal_var=False), t.sf (values printed by
/// Tests/SubspaceAnalysisTests/statistics_reference.py).
@Suite struct StatisticsTests {
    let x: [Double] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    let y: [Double] = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8]

    @Test func averageRanksGiveTiesTheirMeanRank() {
        #expect(RankStatistics.averageRanks(x) == [4.5, 1.5, 6.0, 1.5, 7.5, 10.0, 3.0, 9.0, 7.5, 4.5])
    }

    @Test func spearmanAndPearsonMatchScipy() throws {
        #expect(abs(try #require(RankStatistics.spearman(x, y)) - 0.13471506281091267) < 1e-12)
        #expect(abs(try #require(RankStatistics.pearson(x, y)) - 0.10492284287735876) < 1e-12)
        #expect(RankStatistics.spearman(x, x.map { $0 * 2 + 1 }) == 1)
        #expect(RankStatistics.spearman(x, [Double](repeating: 1, count: x.count)) == nil)
    }

    @Test func welchTMatchesScipyAndDecides() throws {
        let a = try #require(Statistic([1.0, 1.1, 0.9])), b = try #require(Statistic([1.5, 1.6, 1.4]))
        let c = SeedComparison(a, b)
        #expect(abs(c.t - -6.123724356957942) < 1e-9)
        #expect(abs(try #require(c.degreesOfFreedom) - 4.000000000000001) < 1e-9)
        #expect(abs(try #require(c.pValue) - 0.0036022326091040063) < 1e-9)
        #expect(c.verdict == .lower)
        // Identical methods: never a verdict other than "not distinguishable".
        #expect(SeedComparison(a, try #require(Statistic([0.9, 1.1, 1.0]))).verdict == .notDistinguishable)
        #expect(SeedComparison(try #require(Statistic([1.0])), b).verdict == .tooFewSeeds)
        // |t| = 2.51 at 3.8 degrees of freedom is p = 0.069: not a difference at 5% (the old |t| ≥ 2 bar said "lower").
        let close = SeedComparison(a, try #require(Statistic([1.25, 1.35, 1.1])))
        #expect(abs(close.t - -2.514474228374849) < 1e-9)
        #expect(abs(try #require(close.degreesOfFreedom) - 3.805940594059407) < 1e-9)
        #expect(abs(try #require(close.pValue) - 0.06890272060189474) < 1e-9)
        #expect(close.verdict == .notDistinguishable)
        // Unequal sizes and spreads; a side without spread (a fixed baseline: a one-sample test, 2 degrees of freedom).
        let cases: [([Double], [Double], Double, Double, Double)] = [
            ([2.0, 2.3, 1.9, 2.2], [2.4, 2.2, 2.9], -1.7597653802562414, 0.18407013689877336, 2.77478344562079),
            ([5.788, 5.828, 5.873], [5.992, 5.992, 5.992], -6.611942832362733, 0.022117925536139445, 2.0),
            ([1.0, 1.2], [1.3, 1.5, 1.4, 1.45, 1.38], -2.8997250166893043, 0.1714424005447762, 1.2361169500510674),
        ]
        for (x, y, t, p, df) in cases {
            let r = SeedComparison(try #require(Statistic(x)), try #require(Statistic(y)))
            let (rp, rdf) = (try #require(r.pValue), try #require(r.degreesOfFreedom))
            #expect(abs(r.t - t) < 1e-9 && abs(rp - p) < 1e-9 && abs(rdf - df) < 1e-9, "\(x) \(y)")
        }
        // No spread on either side: decided by the means alone.
        #expect(SeedComparison(try #require(Statistic([1, 1])), try #require(Statistic([2, 2]))).verdict == .lower)
        #expect(SeedComparison(try #require(Statistic([1, 1])), try #require(Statistic([1, 1]))).verdict == .notDistinguishable)
    }

    /// scipy.stats.t.sf, doubled; fractional degrees of freedom as Welch's test gives them.
    @Test func studentTTwoSidedPValuesMatchScipy() {
        let cases: [(Double, Double, Double)] = [
            (2.0, 4.0, 0.11611652351681556), (2.776445105197799, 4.0, 0.04999999999999976), (1.0, 1.5, 0.45113536727671033),
            (10.0, 2.0, 0.00985245702332569), (0.5, 30.0, 0.6207230048851272), (3.0, 3.7, 0.04412588561151867),
        ]
        for (t, df, p) in cases {
            #expect(abs(StudentT.twoSidedPValue(t: t, degreesOfFreedom: df) - p) < 1e-12, "t \(t) df \(df)")
            #expect(abs(StudentT.twoSidedPValue(t: -t, degreesOfFreedom: df) - p) < 1e-12)
        }
        // scipy.stats.t.ppf(0.975, df): the 95% critical values.
        for (df, critical) in [(4.0, 2.7764451051977934), (2.0, 4.302652729749462), (3.805940594059407, 2.8331774490550883)] {
            #expect(abs(StudentT.twoSidedCritical(alpha: 0.05, degreesOfFreedom: df) - critical) < 1e-9, "df \(df)")
        }
        #expect(StudentT.twoSidedPValue(t: 0, degreesOfFreedom: 3) == 1)
        #expect(StudentT.twoSidedPValue(t: .infinity, degreesOfFreedom: 3) == 0)
    }

    @Test func topKOverlapAndChance() {
        let a: [Double] = [9, 8, 7, 1, 1, 1, 1, 1, 1, 1], b: [Double] = [9, 1, 8, 7, 1, 1, 1, 1, 1, 1]
        #expect(RankStatistics.topK(a, 3) == [0, 1, 2])
        #expect(abs(RankStatistics.topKOverlap(a, b, k: 3) - 2.0 / 3) < 1e-12)
        #expect(RankStatistics.topKChance(k: 3, of: 10) == 0.3)
    }

    @Test func permutationPValueSeparatesSignalFromNoise() {
        let n = 40
        let a = (0..<n).map { Double($0) }
        let related = a.map { $0 + Double(($0 * 7).truncatingRemainder(dividingBy: 5)) }
        let unrelated = (0..<n).map { Double(($0 * 17) % n) }
        let rho: ([Double], [Double]) -> Double = { RankStatistics.spearman($0, $1) ?? 0 }
        #expect(RankStatistics.permutationPValue(a, related, trials: 500, statistic: rho) < 0.01)
        #expect(RankStatistics.permutationPValue(a, unrelated, trials: 500, statistic: rho) > 0.05)
        // Seeded: the same p-value twice.
        #expect(RankStatistics.permutationPValue(a, unrelated, trials: 200, seed: 3, statistic: rho)
                == RankStatistics.permutationPValue(a, unrelated, trials: 200, seed: 3, statistic: rho))
    }
}
