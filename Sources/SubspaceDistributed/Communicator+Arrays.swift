/// Array and scalar conveniences over the buffer collectives. Each is itself a collective: every rank
/// must call it, in the same order as its other collectives.
extension Communicator {
    /// Reduces `values` element-wise across ranks, in place. All ranks pass the same count.
    public func allReduce<T: CollectiveElement>(
        _ values: inout [T], op: ReduceOp = .sum
    ) throws(CommunicatorError) {
        try values.withUnsafeMutableBufferPointer { (buffer) throws(CommunicatorError) in
            try allReduce(buffer, op: op)
        }
    }

    /// Reduces one scalar across ranks.
    public func allReduce<T: CollectiveElement>(
        _ value: T, op: ReduceOp = .sum
    ) throws(CommunicatorError) -> T {
        var values = [value]
        try allReduce(&values, op: op)
        return values[0]
    }

    /// Returns every rank's `value`, indexed by rank.
    public func allGather<T: CollectiveElement>(_ value: T) throws(CommunicatorError) -> [T] {
        try allGather([value], counts: Array(repeating: 1, count: size))
    }

    /// Concatenates every rank's `values` (`counts[r]` elements on rank r) in rank order.
    public func allGather<T: CollectiveElement>(
        _ values: [T], counts: [Int]
    ) throws(CommunicatorError) -> [T] {
        // An invalid `counts` is reported by the buffer collective; the output size must not trap first.
        let total = counts.allSatisfy { $0 >= 0 } ? counts.reduce(0, +) : 0
        var output = [T](unsafeUninitializedCapacity: total) { _, initialized in initialized = total }
        try values.withUnsafeBufferPointer { (input) throws(CommunicatorError) in
            try output.withUnsafeMutableBufferPointer { (out) throws(CommunicatorError) in
                try allGather(input, counts: counts, output: out)
            }
        }
        return output
    }

    /// Returns every rank's `values`, indexed by rank; the counts may differ and need not be known in
    /// advance (they are exchanged first).
    public func allGatherArrays<T: CollectiveElement>(
        _ values: [T]
    ) throws(CommunicatorError) -> [[T]] {
        let counts = try allGather(Int64(values.count)).map { Int($0) }
        let flat = try allGather(values, counts: counts)
        return Self.split(flat, counts: counts)
    }

    /// Reduces `values` (`counts.reduce(0, +)` elements) across ranks and returns this rank's
    /// `counts[rank]` reduced elements.
    public func reduceScatter<T: CollectiveElement>(
        _ values: [T], counts: [Int], op: ReduceOp = .sum
    ) throws(CommunicatorError) -> [T] {
        let mine = (0..<counts.count).contains(rank) ? max(counts[rank], 0) : 0
        var output = [T](unsafeUninitializedCapacity: mine) { _, initialized in initialized = mine }
        try values.withUnsafeBufferPointer { (input) throws(CommunicatorError) in
            try output.withUnsafeMutableBufferPointer { (out) throws(CommunicatorError) in
                try reduceScatter(input, counts: counts, output: out, op: op)
            }
        }
        return output
    }

    /// Replaces `values` on every rank with `root`'s `values`. The count is broadcast first, so other
    /// ranks may pass any array (it is resized).
    public func broadcast<T: CollectiveElement>(
        _ values: inout [T], root: Int
    ) throws(CommunicatorError) {
        var count = [Int64(values.count)]
        try count.withUnsafeMutableBufferPointer { (buffer) throws(CommunicatorError) in
            try broadcast(buffer, root: root)
        }
        if rank != root {
            let n = Int(count[0])
            values = [T](unsafeUninitializedCapacity: n) { _, initialized in initialized = n }
        }
        try values.withUnsafeMutableBufferPointer { (buffer) throws(CommunicatorError) in
            try broadcast(buffer, root: root)
        }
    }

    /// Returns `root`'s `bytes` on every rank (other ranks' arguments are ignored), e.g. a JSON document.
    public func broadcast(bytes: [UInt8], root: Int = 0) throws(CommunicatorError) -> [UInt8] {
        var values = bytes
        try broadcast(&values, root: root)
        return values
    }

    /// Returns `root`'s `string` on every rank (other ranks' arguments are ignored), sent as UTF-8.
    public func broadcast(string: String, root: Int = 0) throws(CommunicatorError) -> String {
        let bytes = try broadcast(bytes: rank == root ? Array(string.utf8) : [], root: root)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Returns every rank's `values`, indexed by rank, on `root`, and nil on the other ranks. The counts
    /// may differ and are exchanged first.
    public func gather<T: CollectiveElement>(
        _ values: [T], root: Int
    ) throws(CommunicatorError) -> [[T]]? {
        let counts = try allGather(Int64(values.count)).map { Int($0) }
        let total = counts.reduce(0, +)
        let isRoot = rank == root
        var output = [T](unsafeUninitializedCapacity: isRoot ? total : 0) { _, initialized in
            initialized = isRoot ? total : 0
        }
        try values.withUnsafeBufferPointer { (input) throws(CommunicatorError) in
            try output.withUnsafeMutableBufferPointer { (out) throws(CommunicatorError) in
                try gather(input, counts: counts, output: isRoot ? out : nil, root: root)
            }
        }
        return isRoot ? Self.split(output, counts: counts) : nil
    }

    private static func split<T>(_ flat: [T], counts: [Int]) -> [[T]] {
        var parts = [[T]]()
        parts.reserveCapacity(counts.count)
        var offset = 0
        for c in counts {
            parts.append(Array(flat[offset..<offset + c]))
            offset += c
        }
        return parts
    }
}
