import SubspaceDistributed

/// Checks of `split` and of collectives on the communicators it makes.
extension CollectiveChecks {
    static func splitEvenOdd(_ comm: any Communicator) throws -> [String] {
        let r = comm.rank
        // key = -rank reverses the order within each parity group.
        let sub = try comm.split(color: r % 2, key: -r)
        let peers = (0..<comm.size).filter { $0 % 2 == r % 2 }.sorted(by: >)
        var failures = [String]()
        guard sub.size == peers.count, sub.rank == peers.firstIndex(of: r) else {
            return ["rank \(sub.rank)/\(sub.size), expected \(peers.firstIndex(of: r)!)/\(peers.count)"]
        }
        let sum = try sub.allReduce(Int64(r))
        if sum != Int64(peers.reduce(0, +)) { failures.append("allReduce \(sum), expected \(peers.reduce(0, +))") }
        let ranks = try sub.allGather(Int32(r))
        if let problem = compare(ranks, peers.map { Int32($0) }, "allGather of old ranks") { failures.append(problem) }
        // Root: the last new rank, i.e. the lowest old rank of the group.
        var token = [Int64(sub.rank == sub.size - 1 ? 1000 + r : -1)]
        try token.withUnsafeMutableBufferPointer { try sub.broadcast($0, root: sub.size - 1) }
        if token[0] != Int64(1000 + peers.last!) { failures.append("broadcast \(token[0])") }
        // Element j of new rank s is old rank + j; each rank keeps one element.
        let input = (0..<sub.size).map { Float(r + $0) }
        let scattered = try sub.reduceScatter(input, counts: Array(repeating: 1, count: sub.size))
        let want = Float(peers.reduce(0, +) + sub.size * sub.rank)
        if scattered != [want] { failures.append("reduceScatter \(scattered), expected [\(want)]") }
        // A split of a split, and the parent still works afterwards.
        let nested = try sub.split(color: 0, key: 0)
        if nested.size != sub.size || nested.rank != sub.rank {
            failures.append("nested split gave \(nested.rank)/\(nested.size)")
        }
        try nested.barrier()
        let total = try comm.allReduce(Int64(1))
        if total != Int64(comm.size) { failures.append("parent allReduce after split gave \(total)") }
        return failures
    }

    static func splitSameColor(_ comm: any Communicator) throws -> [String] {
        let copy = try comm.split(color: 7, key: 0)
        guard copy.size == comm.size, copy.rank == comm.rank else {
            return ["same-colour split gave \(copy.rank)/\(copy.size)"]
        }
        let ranks = try copy.allGather(Int64(comm.rank))
        return compare(ranks, (0..<comm.size).map { Int64($0) }, "allGather").map { [$0] } ?? []
    }
}
