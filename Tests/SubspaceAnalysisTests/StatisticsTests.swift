import Testing
@testable import SubspaceAnalysis

/// Against scipy.stats (1.17): rankdata, spearmanr, pearsonr, ttest_ind(equal_var=False).
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
        #expect(c.verdict == .lower)
        // Identical methods: never a verdict other than "not distinguishable".
        #expect(SeedComparison(a, try #require(Statistic([0.9, 1.1, 1.0]))).verdict == .notDistinguishable)
        #expect(SeedComparison(try #require(Statistic([1.0])), b).verdict == .tooFewSeeds)
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
