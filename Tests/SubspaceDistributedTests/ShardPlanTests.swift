import SubspaceDistributed
import Testing

@Suite struct ShardPlanTests {
    @Test func balancedRangesDifferByAtMostOneEarlierLarger() {
        let plan = ShardPlan.balanced(total: 10, parts: 4)
        #expect(plan.counts == [3, 3, 2, 2])
        #expect(plan.offsets == [0, 3, 6, 8])
        #expect(plan.paddedTotal == 10)
        #expect(plan.range(of: 0) == 0..<3)
        #expect(plan.range(of: 3) == 8..<10)
        #expect(plan.validRange(of: 3) == 8..<10)
    }

    @Test(arguments: [(0, 1), (0, 3), (1, 4), (7, 7), (100, 3), (1_000_003, 8)])
    func balancedTilesExactly(total: Int, parts: Int) {
        let plan = ShardPlan.balanced(total: total, parts: parts)
        #expect(plan.counts.reduce(0, +) == total)
        #expect(plan.counts.max()! - plan.counts.min()! <= 1)
        #expect(plan.counts == plan.counts.sorted(by: >))
        var next = 0
        for rank in 0..<parts {
            #expect(plan.range(of: rank).lowerBound == next)
            next = plan.range(of: rank).upperBound
        }
        #expect(next == total)
        for index in [0, total / 2, total - 1] where index >= 0 && index < total {
            #expect(plan.range(of: plan.owner(of: index)).contains(index))
        }
    }

    @Test func paddedRangesAreEqualAndAligned() {
        let plan = ShardPlan.padded(total: 10, parts: 4, alignment: 4)
        #expect(plan.counts == [4, 4, 4, 4])
        #expect(plan.offsets == [0, 4, 8, 12])
        #expect(plan.paddedTotal == 16)
        #expect(plan.validRange(of: 2) == 8..<10)
        #expect(plan.validRange(of: 3).isEmpty)
        #expect(plan.owner(of: 15) == 3)
    }

    @Test func paddedWithoutAlignmentRoundsUpPerPart() {
        let plan = ShardPlan.padded(total: 10, parts: 3)
        #expect(plan.counts == [4, 4, 4])
        #expect(plan.paddedTotal == 12)
        #expect(ShardPlan.padded(total: 12, parts: 3, alignment: 2).paddedTotal == 12)
        #expect(ShardPlan.padded(total: 0, parts: 3, alignment: 8).paddedTotal == 0)
        #expect(ShardPlan.padded(total: 1, parts: 2, alignment: 64).counts == [64, 64])
    }
}
