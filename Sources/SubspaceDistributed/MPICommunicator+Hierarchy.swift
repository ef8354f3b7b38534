/// All-reduce over several nodes in two levels, so that the node-local shared-memory path does the work
/// within a node and only 1/L of the buffer per rank crosses the network (L ranks per node):
///
/// 1. reduce-scatter within the node (the shared-memory window): local rank i holds slice i, summed over
///    its node;
/// 2. `MPI_Allreduce` of slice i among the local ranks i of all nodes (the cross communicator, one per
///    local index), all slices at once;
/// 3. all-gather of the slices within the node.
///
/// Every rank ends with the same bits: each slice is reduced once (steps 1–2 give one result to all its
/// holders) and then copied. The sum's association differs from a flat `MPI_Allreduce` (rounding only).
extension MPICommunicator {
    /// Sets up `.hierarchical` for this communicator when it spans several nodes with the same number (≥ 2)
    /// of ranks on each; otherwise leaves it off. Returns whether it is on. Collective; call once, before
    /// other collectives run on other threads (the node and cross communicators are this one's own).
    @discardableResult
    public func enableNodeHierarchy() throws(CommunicatorError) -> Bool {
        guard !isSingleNode, size > 1 else { return false }
        let local = try splitByNode()
        var extremes = [Double(local.size), -Double(local.size)]
        try allReduce(&extremes, op: .max)  // 16 bytes: MPI's path (the hierarchy is not set yet)
        guard extremes[0] == -extremes[1], local.size > 1 else { return false }
        let cross = try splitCommunicator(color: local.rank, key: rank)
        state.withLock { $0.hierarchy = (local, cross) }
        return true
    }

    /// The number of ranks per node of `.hierarchical`, nil when it is off.
    public var ranksPerNodeOfHierarchy: Int? { state.withLock { $0.hierarchy?.node.size } }

    func hierarchicalAllReduce<T: CollectiveElement>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp, context: CollectiveContext
    ) throws(CommunicatorError) {
        guard let hierarchy = state.withLock({ $0.hierarchy }) else {
            throw context.invalid("the hierarchical algorithm needs enableNodeHierarchy() (several nodes, equal ranks on each)")
        }
        let (node, cross) = hierarchy
        guard !buffer.isEmpty else { return }
        node.sharedMemoryPolicy = sharedMemoryPolicy
        let stride = MemoryLayout<T>.stride
        let unit = max(1, 64 / stride)  // slices on cache lines, as in the shared-memory path
        let counts = (0..<node.size).map { Self.slice(of: $0, parts: node.size, count: buffer.count, unit: unit).count }
        let mine = counts[node.rank]
        // The address crosses the lock as an integer (a pointer result would be a `sending` one); only this
        // rank's collective calls use the scratch, one at a time.
        let address = state.withLock { (state: inout State) -> Int in
            if state.scratchBytes < mine * stride {
                state.scratch?.deallocate()
                state.scratchBytes = max(mine * stride, 64)
                state.scratch = UnsafeMutableRawPointer.allocate(byteCount: state.scratchBytes, alignment: 64)
            }
            return Int(bitPattern: state.scratch!)
        }
        let slice = UnsafeMutableRawPointer(bitPattern: address)!.bindMemory(to: T.self, capacity: max(1, mine))
        let sliceBuffer = UnsafeMutableBufferPointer(start: slice, count: mine)
        let total = buffer.count * stride
        try node.reduceScatter(
            UnsafeBufferPointer(buffer), counts: counts, output: sliceBuffer, op: op,
            algorithm: node.reductionAlgorithm(forBytes: total))
        try cross.allReduce(sliceBuffer, op: op, algorithm: .mpi)
        try node.allGather(UnsafeBufferPointer(sliceBuffer), counts: counts, output: buffer)
    }
}
