/// Which rank does which item, chosen by longest-processing-time-first: items in descending cost, each
/// to the rank with the least cost so far. Greedy LPT is within 4/3 − 1/(3p) of the best makespan on
/// p ranks (Graham 1969), and balances by cost, not by count: one big MLP matrix can weigh as much as
/// several attention ones.
public struct WorkPlan: Sendable, Equatable {
    /// The owner of each item.
    public let owners: [Int]
    /// The cost of each item (relative units).
    public let costs: [Double]
    public let rankCount: Int
    /// Per rank, its items in processing order (descending cost, then index).
    public let order: [[Int]]

    /// A plan with the given owners; `order` lists each rank's items by descending cost.
    public init(owners: [Int], costs: [Double], ranks: Int) {
        precondition(ranks >= 1 && owners.count == costs.count, "plan of \(owners.count) owners for \(costs.count) costs")
        precondition(owners.allSatisfy { (0..<ranks).contains($0) }, "owner outside 0..<\(ranks)")
        self.owners = owners
        self.costs = costs
        self.rankCount = ranks
        var order = [[Int]](repeating: [], count: ranks)
        for i in WorkPlan.descending(costs) { order[owners[i]].append(i) }
        self.order = order
    }

    /// The LPT plan of `costs` (each ≥ 0) over `ranks` ranks. Ties go to the lower index and the lower
    /// rank, so every rank computes the same plan.
    public static func longestProcessingTimeFirst(costs: [Double], ranks: Int) -> WorkPlan {
        precondition(ranks >= 1, "a plan needs at least one rank")
        precondition(costs.allSatisfy { $0 >= 0 && $0.isFinite }, "costs must be finite and ≥ 0")
        var load = [Double](repeating: 0, count: ranks)
        var owners = [Int](repeating: 0, count: costs.count)
        for i in descending(costs) {
            var best = 0
            for r in 1..<ranks where load[r] < load[best] { best = r }
            owners[i] = best
            load[best] += costs[i]
        }
        return WorkPlan(owners: owners, costs: costs, ranks: ranks)
    }

    private static func descending(_ costs: [Double]) -> [Int] {
        costs.indices.sorted { costs[$0] != costs[$1] ? costs[$0] > costs[$1] : $0 < $1 }
    }

    /// Total cost per rank.
    public var rankCosts: [Double] {
        var load = [Double](repeating: 0, count: rankCount)
        for (i, r) in owners.enumerated() { load[r] += costs[i] }
        return load
    }

    public var maxCost: Double { rankCosts.max() ?? 0 }
    public var meanCost: Double { costs.reduce(0, +) / Double(rankCount) }
    /// The makespan over a perfect split: 1 is perfect balance.
    public var maxOverMean: Double { meanCost > 0 ? maxCost / meanCost : 1 }
    /// Rounds of the analysis: the most items any rank owns.
    public var roundCount: Int { order.map(\.count).max() ?? 0 }
}
