import SubspaceDistributed

/// All-gather, gather and broadcast checks.
extension CollectiveChecks {
    static func allGatherUneven<T: TestElement>(_ comm: any Communicator, _: T.Type) throws -> [String] {
        // Rank 1 contributes nothing; the others rank + 3 elements.
        let counts = (0..<comm.size).map { $0 == 1 ? 0 : $0 + 3 }
        let mine = (0..<counts[comm.rank]).map { T(testValue: 100 * comm.rank + $0) }
        let output = try comm.allGather(mine, counts: counts)
        let want = (0..<comm.size).flatMap { q in (0..<counts[q]).map { T(testValue: 100 * q + $0) } }
        return compare(output, want, "counts \(counts)").map { [$0] } ?? []
    }

    static func allGatherLarge(_ comm: any Communicator, total: Int) throws -> [String] {
        let plan = ShardPlan.balanced(total: total, parts: comm.size)
        let mine = plan.range(of: comm.rank).map { Float($0 % 10007 + comm.rank) }
        let output = try comm.allGather(mine, counts: plan.counts)
        let want = (0..<total).map { Float($0 % 10007 + plan.owner(of: $0)) }
        return compare(output, want, "\(plan)").map { [$0] } ?? []
    }

    static func allGatherConveniences(_ comm: any Communicator) throws -> [String] {
        var failures = [String]()
        let scalars = try comm.allGather(Int64(comm.rank * 10 + 1))
        if let problem = compare(scalars, (0..<comm.size).map { Int64($0 * 10 + 1) }, "scalar") {
            failures.append(problem)
        }
        // Rank r contributes r elements (rank 0 none), counts unknown in advance.
        let arrays = try comm.allGatherArrays((0..<comm.rank).map { Int32($0) })
        let want = (0..<comm.size).map { q in (0..<q).map { Int32($0) } }
        if arrays != want { failures.append("arrays \(arrays), expected \(want)") }
        return failures
    }

    static func broadcastFromLastRank<T: TestElement>(_ comm: any Communicator, _: T.Type) throws -> [String] {
        let root = comm.size - 1  // non-zero whenever there is more than one rank
        var failures = [String]()
        for count in [0, 9] {
            var values = (0..<count).map { comm.rank == root ? T(testValue: $0 * 3 + 7) : T(testValue: 0) }
            try values.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
            let want = (0..<count).map { T(testValue: $0 * 3 + 7) }
            if let problem = compare(values, want, "root \(root) count \(count)") { failures.append(problem) }
        }
        return failures
    }

    static func broadcastArray(_ comm: any Communicator) throws -> [String] {
        let root = comm.size / 2
        var values: [Int64] = comm.rank == root ? [5, 6, 7, 8] : [Int64(comm.rank)]
        try comm.broadcast(&values, root: root)
        return compare(values, [5, 6, 7, 8], "root \(root)").map { [$0] } ?? []
    }

    static func broadcastStringAndBytes(_ comm: any Communicator) throws -> [String] {
        var failures = [String]()
        let root = comm.size > 1 ? 1 : 0
        let json = #"{"step": 42, "name": "Ünïcødé ✓", "lr": 3.0e-4, "ranks": [0, 1, 2]}"#
        let received = try comm.broadcast(string: comm.rank == root ? json : "ignored", root: root)
        if received != json { failures.append("string: got \(received)") }
        let empty = try comm.broadcast(bytes: comm.rank == 0 ? [] : [1, 2, 3])
        if !empty.isEmpty { failures.append("empty bytes: got \(empty.count) bytes") }
        let pattern = (0..<70_001).map { UInt8(truncatingIfNeeded: $0 * 31 + 5) }
        let bytes = try comm.broadcast(bytes: comm.rank == 0 ? pattern : [], root: 0)
        if let problem = compare(bytes, pattern, "70001 bytes") { failures.append(problem) }
        return failures
    }

    static func gatherUneven<T: TestElement>(_ comm: any Communicator, _: T.Type) throws -> [String] {
        let root = comm.size / 2
        // The last rank (when there are several) contributes nothing.
        let counts = (0..<comm.size).map { $0 == comm.size - 1 && comm.size > 1 ? 0 : $0 + 2 }
        let total = counts.reduce(0, +)
        let mine = (0..<counts[comm.rank]).map { T(testValue: 1000 * comm.rank + $0) }
        // Non-roots pass a wrongly sized output, which the contract says is ignored.
        var output = [T](repeating: T(testValue: 0), count: comm.rank == root ? total : 1)
        try mine.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { out in
                try comm.gather(input, counts: counts, output: out, root: root)
            }
        }
        guard comm.rank == root else { return [] }
        let want = (0..<comm.size).flatMap { q in (0..<counts[q]).map { T(testValue: 1000 * q + $0) } }
        return compare(output, want, "root \(root) counts \(counts)").map { [$0] } ?? []
    }

    static func gatherArrays(_ comm: any Communicator) throws -> [String] {
        let arrays = try comm.gather((0...comm.rank).map { Int32(comm.rank * 10 + $0) }, root: 0)
        if comm.rank != 0 {
            return arrays == nil ? [] : ["non-root received \(arrays!)"]
        }
        let want = (0..<comm.size).map { q in (0...q).map { Int32(q * 10 + $0) } }
        return arrays == want ? [] : ["got \(String(describing: arrays)), expected \(want)"]
    }
}
