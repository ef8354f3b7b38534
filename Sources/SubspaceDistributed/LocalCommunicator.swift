import Synchronization

/// One rank of an in-process cluster (see `LocalCluster`), for unit tests of code built on
/// `Communicator`.
///
/// Every collective publishes this rank's arguments, waits for all ranks (barrier 1), checks that they
/// agree, reads its peers' buffers directly, and waits again (barrier 2) so that no rank returns — and
/// lets its caller reuse its buffers — while a peer may still be reading them. Reductions combine
/// contributions in rank order, so all ranks get bit-identical results.
public final class LocalCommunicator: Communicator {
    public let rank: Int
    public var size: Int { group.size }
    let group: LocalGroup
    private let sequenceCounter = Atomic<Int>(0)

    init(rank: Int, group: LocalGroup) {
        self.rank = rank
        self.group = group
    }

    public func allReduceAlgorithm(forBytes byteCount: Int) -> String { "local" }

    private func nextContext(_ operation: String) -> CollectiveContext {
        let sequence = sequenceCounter.wrappingAdd(1, ordering: .relaxed).newValue
        return CollectiveContext(operation: operation, sequence: sequence, rank: rank)
    }

    /// Runs one collective: publish `slot`, wait for all ranks, check they agree with rank 0, run `body`
    /// with every rank's slot, and wait for all ranks again.
    private func collective<R>(
        _ context: CollectiveContext, _ slot: LocalSlot,
        _ body: ([LocalSlot]) throws(CommunicatorError) -> R
    ) throws(CommunicatorError) -> R {
        let published = try group.arrive(rank: rank, slot: slot, context: context)
        let slots = published.map { $0! }
        // Every rank sees the same slots, so every rank reaches the same verdict and none is left waiting.
        let reference = slots[0]
        for (r, other) in slots.enumerated() {
            var problems = [String]()
            if other.operation != reference.operation || other.sequence != reference.sequence {
                problems.append("\(other.operation) #\(other.sequence) vs \(reference.operation) #\(reference.sequence)")
            } else {
                if other.kind != reference.kind {
                    problems.append("element \(String(describing: other.kind)) vs \(String(describing: reference.kind))")
                }
                if other.op != reference.op {
                    problems.append("op \(String(describing: other.op)) vs \(String(describing: reference.op))")
                }
                if other.count != reference.count { problems.append("count \(other.count) vs \(reference.count)") }
                if other.counts != reference.counts { problems.append("counts \(other.counts) vs \(reference.counts)") }
                if other.root != reference.root { problems.append("root \(other.root) vs \(reference.root)") }
            }
            if !problems.isEmpty {
                throw context.error(.mismatch("rank \(r) vs rank 0: " + problems.joined(separator: ", ")))
            }
        }
        let result = try body(slots)
        _ = try group.arrive(rank: rank, slot: nil, context: context)
        return result
    }

    public func allReduce<T: CollectiveElement>(
        _ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp
    ) throws(CommunicatorError) {
        let context = nextContext("allReduce")
        try context.validateElement(T.self)
        let slot = LocalSlot(
            operation: context.operation, sequence: context.sequence, kind: T.collectiveKind, op: op,
            count: buffer.count, input: buffer.baseAddress.map { UnsafeRawPointer($0) })
        // Reduce into a private copy: peers still read this rank's buffer until barrier 2.
        var result = [T](unsafeUninitializedCapacity: buffer.count) { _, n in n = buffer.count }
        try collective(context, slot) { (slots) throws(CommunicatorError) in
            result.withUnsafeMutableBytes { out in
                guard let destination = out.baseAddress else { return }
                ReductionKernels.reduce(
                    slots.map { $0.input! }, into: destination, count: buffer.count,
                    kind: T.collectiveKind, op: op)
            }
        }
        _ = result.withUnsafeBufferPointer { buffer.update(fromContentsOf: $0) }
    }

    public func reduceScatter<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>,
        op: ReduceOp
    ) throws(CommunicatorError) {
        let context = nextContext("reduceScatter")
        try context.validateElement(T.self)
        let (offsets, total) = try context.validateCounts(counts, size: size)
        try context.validateCount("input", input.count, expected: total)
        try context.validateCount("output", output.count, expected: counts[rank])
        let slot = LocalSlot(
            operation: context.operation, sequence: context.sequence, kind: T.collectiveKind, op: op,
            count: total, counts: counts, input: input.baseAddress.map { UnsafeRawPointer($0) })
        try collective(context, slot) { (slots) throws(CommunicatorError) in
            guard let destination = output.baseAddress else { return }
            let byteOffset = offsets[rank] * MemoryLayout<T>.stride
            ReductionKernels.reduce(
                slots.map { $0.input! + byteOffset }, into: UnsafeMutableRawPointer(destination),
                count: counts[rank], kind: T.collectiveKind, op: op)
        }
    }

    public func allGather<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>
    ) throws(CommunicatorError) {
        let context = nextContext("allGather")
        try context.validateElement(T.self)
        let (offsets, total) = try context.validateCounts(counts, size: size)
        try context.validateCount("input", input.count, expected: counts[rank])
        try context.validateCount("output", output.count, expected: total)
        let slot = LocalSlot(
            operation: context.operation, sequence: context.sequence, kind: T.collectiveKind,
            count: total, counts: counts, input: input.baseAddress.map { UnsafeRawPointer($0) })
        try collective(context, slot) { (slots) throws(CommunicatorError) in
            Self.concatenate(slots, counts: counts, offsets: offsets, into: output)
        }
    }

    public func broadcast<T: CollectiveElement>(
        _ buffer: UnsafeMutableBufferPointer<T>, root: Int
    ) throws(CommunicatorError) {
        let context = nextContext("broadcast")
        try context.validateElement(T.self)
        try context.validateRoot(root, size: size)
        let slot = LocalSlot(
            operation: context.operation, sequence: context.sequence, kind: T.collectiveKind,
            count: buffer.count, root: root, input: buffer.baseAddress.map { UnsafeRawPointer($0) })
        try collective(context, slot) { (slots) throws(CommunicatorError) in
            guard rank != root, let destination = buffer.baseAddress else { return }
            UnsafeMutableRawPointer(destination).copyMemory(
                from: slots[root].input!, byteCount: buffer.count * MemoryLayout<T>.stride)
        }
    }

    public func gather<T: CollectiveElement>(
        _ input: UnsafeBufferPointer<T>, counts: [Int], output: UnsafeMutableBufferPointer<T>?,
        root: Int
    ) throws(CommunicatorError) {
        let context = nextContext("gather")
        try context.validateElement(T.self)
        try context.validateRoot(root, size: size)
        let (offsets, total) = try context.validateCounts(counts, size: size)
        try context.validateCount("input", input.count, expected: counts[rank])
        if rank == root {
            guard let output else { throw context.invalid("output is nil on the root") }
            try context.validateCount("output", output.count, expected: total)
        }
        let slot = LocalSlot(
            operation: context.operation, sequence: context.sequence, kind: T.collectiveKind,
            count: total, counts: counts, root: root,
            input: input.baseAddress.map { UnsafeRawPointer($0) })
        try collective(context, slot) { (slots) throws(CommunicatorError) in
            guard rank == root, let output else { return }
            Self.concatenate(slots, counts: counts, offsets: offsets, into: output)
        }
    }

    public func barrier() throws(CommunicatorError) {
        let context = nextContext("barrier")
        let slot = LocalSlot(operation: context.operation, sequence: context.sequence)
        // One barrier suffices: no buffers are shared, and the published slots stay readable until the
        // next barrier completes.
        let published = try group.arrive(rank: rank, slot: slot, context: context)
        for (r, other) in published.enumerated() {
            guard let other, other.operation == slot.operation, other.sequence == slot.sequence else {
                let what = published[r].map { "\($0.operation) #\($0.sequence)" } ?? "nothing"
                throw context.error(.mismatch("rank \(r) called \(what)"))
            }
        }
    }

    public func split(color: Int, key: Int) throws(CommunicatorError) -> any Communicator {
        let context = nextContext("split")
        guard color >= 0 else { throw context.invalid("color \(color) is negative") }
        var slot = LocalSlot(operation: context.operation, sequence: context.sequence)
        slot.color = color
        slot.key = key
        return try collective(context, slot) { (slots) throws(CommunicatorError) in
            // New order: key, then old rank — the same on every rank, so all agree on the membership.
            let peers = slots.indices.filter { slots[$0].color == color }
                .sorted { (slots[$0].key, $0) < (slots[$1].key, $1) }
            let newRank = peers.firstIndex(of: rank)!
            let subgroup = group.subgroup(
                for: .init(sequence: context.sequence, color: color),
                members: peers.map { group.members[$0] })
            return LocalCommunicator(rank: newRank, group: subgroup)
        }
    }

    private static func concatenate<T>(
        _ slots: [LocalSlot], counts: [Int], offsets: [Int], into output: UnsafeMutableBufferPointer<T>
    ) {
        guard let base = output.baseAddress else { return }
        for (r, slot) in slots.enumerated() where counts[r] > 0 {
            UnsafeMutableRawPointer(base + offsets[r]).copyMemory(
                from: slot.input!, byteCount: counts[r] * MemoryLayout<T>.stride)
        }
    }
}
