import Testing
import SubspaceCore
@testable import SubspaceAnalysis

@Suite struct WorkPlanTests {
    @Test func longestFirstOnKnownCosts() {
        // 7→0, 5→1, 4→1 (9), 3→0 (10), 3→1 (12), 2→0 (12): a perfect split.
        let plan = WorkPlan.longestProcessingTimeFirst(costs: [3, 7, 2, 5, 3, 4], ranks: 2)
        #expect(plan.owners == [0, 0, 0, 1, 1, 1])
        #expect(plan.rankCosts == [12, 12])
        #expect(plan.maxOverMean == 1)
        #expect(plan.order == [[1, 0, 2], [3, 5, 4]])
        #expect(plan.roundCount == 3)

        // LPT's known imperfection: 3, 3, 2, 2, 2 on two ranks gives 7 | 5 where 6 | 6 exists.
        let greedy = WorkPlan.longestProcessingTimeFirst(costs: [3, 3, 2, 2, 2], ranks: 2)
        #expect(greedy.rankCosts == [7, 5])
        #expect(greedy.maxCost == 7 && greedy.meanCost == 6)
        #expect(abs(greedy.maxOverMean - 7.0 / 6.0) < 1e-12)
    }

    @Test func balancesByCostNotCount() {
        // One big MLP matrix against many small attention ones.
        let plan = WorkPlan.longestProcessingTimeFirst(costs: [12] + Array(repeating: 1, count: 12), ranks: 2)
        #expect(plan.order[0] == [0] && plan.order[1].count == 12)
        #expect(plan.maxOverMean == 1)
    }

    /// Any greedy list schedule ends by mean + (1 − 1/p)·largest item (Graham 1966).
    @Test func withinGrahamsBound() {
        var rng = RandomStream(seed: 11)
        for ranks in [2, 3, 5, 8] {
            for _ in 0..<20 {
                let costs = (0..<(3 * ranks + rng.nextInt(below: 20))).map { _ in Double(1 + rng.nextInt(below: 1000)) }
                let plan = WorkPlan.longestProcessingTimeFirst(costs: costs, ranks: ranks)
                let bound = plan.meanCost + (1 - 1 / Double(ranks)) * costs.max()!
                #expect(plan.maxCost <= bound * (1 + 1e-12))
                #expect(plan.rankCosts.reduce(0, +) == costs.reduce(0, +))
                #expect(Set(plan.order.flatMap { $0 }) == Set(costs.indices))
            }
        }
    }

    @Test func moreRanksThanItems() {
        let plan = WorkPlan.longestProcessingTimeFirst(costs: [5, 1], ranks: 4)
        #expect(plan.order.map(\.count) == [1, 1, 0, 0])
        #expect(plan.maxOverMean == 5 / 1.5)
    }

    @Test func costModel() {
        let full = DeltaAnalysisOptions(rank: 8)
        #expect(full.cost(64, 16) == 64 * 16 * 16)
        let randomized = DeltaAnalysisOptions(rank: 8, method: .randomized, oversampling: 4)
        #expect(randomized.cost(64, 32) == 64 * 32 * 12)
        #expect(randomized.cost(64, 10) == 64 * 10 * 10)  // capped at min(m, n)
    }

    @Test func spectrumFigures() {
        let s = Spectrum(complete: [2, 2, 2, 2])
        #expect(s.effectiveRank.map { abs($0 - 4) < 1e-12 } == true)
        #expect(s.energyFraction(atRank: 2) == 0.5)
        #expect(s.rank(forEnergy: 0.5) == 2)
        #expect(s.rank(forEnergy: 0.51) == 3)
        #expect(Spectrum(complete: [3, 0, 0]).effectiveRank == 1)
        let truncated = Spectrum(leading: [2, 1], totalEnergy: 10)
        #expect(truncated.energyFraction(atRank: 2) == 0.5)
        #expect(truncated.rank(forEnergy: 0.9) == nil)
        #expect(truncated.effectiveRank == nil)
        #expect(Spectrum(complete: [0, 0]).energyFraction(atRank: 1) == nil)
    }
}
