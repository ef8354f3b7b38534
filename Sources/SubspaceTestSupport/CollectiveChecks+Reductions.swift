import SubspaceDistributed

/// All-reduce and reduce-scatter checks.
extension CollectiveChecks {
    /// Rank r's element i: small integers whose sums are exact in Float for any test size, and whose
    /// max/min differ across ranks (some negative, which wraps for UInt8 like any conversion would).
    static func value(rank r: Int, index i: Int, op: ReduceOp) -> Int {
        switch op {
        case .sum: r + 1 + i % 10007
        case .max, .min: (r * 7 + i * 3) % 11 - 5
        }
    }

    /// The reduction over ranks 0..<size of `value(rank:index:op:)`, folded in rank order.
    static func expected<T: TestElement>(_: T.Type, size: Int, index i: Int, op: ReduceOp) -> T {
        var result = T(testValue: value(rank: 0, index: i, op: op))
        for q in 1..<max(size, 1) {
            let v = T(testValue: value(rank: q, index: i, op: op))
            switch op {
            case .sum: result = T.testSum(result, v)
            case .max: result = Swift.max(result, v)
            case .min: result = Swift.min(result, v)
            }
        }
        return result
    }

    static func contribution<T: TestElement>(_: T.Type, rank: Int, count: Int, op: ReduceOp, from start: Int = 0) -> [T] {
        (start..<start + count).map { T(testValue: value(rank: rank, index: $0, op: op)) }
    }

    static func allReduceSum<T: TestElement>(_ comm: any Communicator, _: T.Type, counts: [Int]) throws -> [String] {
        var failures = [String]()
        for count in counts {
            var values = contribution(T.self, rank: comm.rank, count: count, op: .sum)
            try comm.allReduce(&values, op: .sum)
            let want = (0..<count).map { expected(T.self, size: comm.size, index: $0, op: .sum) }
            if let problem = compare(values, want, "count \(count)") { failures.append(problem) }
        }
        return failures
    }

    static func allReduceMaxMin<T: TestElement>(_ comm: any Communicator, _: T.Type, count: Int) throws -> [String] {
        var failures = [String]()
        for op in [ReduceOp.max, .min] {
            var values = contribution(T.self, rank: comm.rank, count: count, op: op)
            try comm.allReduce(&values, op: op)
            let want = (0..<count).map { expected(T.self, size: comm.size, index: $0, op: op) }
            if let problem = compare(values, want, "\(op) count \(count)") { failures.append(problem) }
        }
        return failures
    }

    static func scalarAndArrayAllReduce(_ comm: any Communicator) throws -> [String] {
        let (r, n) = (comm.rank, comm.size)
        var failures = [String]()
        let sum = try comm.allReduce(Int64(r + 1))
        if sum != Int64(n * (n + 1) / 2) { failures.append("scalar sum \(sum), expected \(n * (n + 1) / 2)") }
        let maximum = try comm.allReduce(Double(r), op: .max)
        if maximum != Double(n - 1) { failures.append("scalar max \(maximum), expected \(n - 1)") }
        let minimum = try comm.allReduce(Int32(r) - 3, op: .min)
        if minimum != -3 { failures.append("scalar min \(minimum), expected -3") }
        var array: [Float] = [Float(r), Float(2 * r)]
        try comm.allReduce(&array)
        let s = Float(n * (n - 1) / 2)
        if let problem = compare(array, [s, 2 * s], "array sum") { failures.append(problem) }
        return failures
    }

    /// Uneven counts with zero-count ranks: rank q gets `q + 2` elements, except every third rank (1, 4, …)
    /// gets none.
    static func unevenCounts(size: Int) -> [Int] {
        (0..<size).map { $0 % 3 == 1 ? 0 : $0 + 2 }
    }

    static func reduceScatterUneven<T: TestElement>(_ comm: any Communicator, _: T.Type, op: ReduceOp) throws -> [String] {
        let counts = unevenCounts(size: comm.size)
        let offset = counts[..<comm.rank].reduce(0, +)
        let input = contribution(T.self, rank: comm.rank, count: counts.reduce(0, +), op: op)
        let output = try comm.reduceScatter(input, counts: counts, op: op)
        let want = (0..<counts[comm.rank]).map { expected(T.self, size: comm.size, index: offset + $0, op: op) }
        return compare(output, want, "counts \(counts)").map { [$0] } ?? []
    }

    static func reduceScatterLarge<T: TestElement>(
        _ comm: any Communicator, _: T.Type, total: Int, padded: Bool = false
    ) throws -> [String] {
        let plan = padded
            ? ShardPlan.padded(total: total, parts: comm.size, alignment: 16)
            : ShardPlan.balanced(total: total, parts: comm.size)
        var failures = [String]()
        for op in [ReduceOp.sum, .max] {
            let input = contribution(T.self, rank: comm.rank, count: plan.paddedTotal, op: op)
            let output = try comm.reduceScatter(input, counts: plan.counts, op: op)
            let want = plan.range(of: comm.rank).map { expected(T.self, size: comm.size, index: $0, op: op) }
            if let problem = compare(output, want, "\(op) \(plan)") { failures.append(problem) }
        }
        return failures
    }
}
