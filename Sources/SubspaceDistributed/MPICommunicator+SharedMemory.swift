import CMPI

/// Reductions through an MPI-3 shared-memory window, for communicators whose ranks share one node.
///
/// Each step handles up to one chunk of every rank's data: every rank copies its contribution into its
/// own segment, all synchronise, and each rank reduces only its slice across all segments — in rank
/// order, so the result is identical to what any rank would compute. For an all-reduce the reduced slices
/// are then copied back by every rank. Each rank thus reads and writes about 3–4× the buffer once, with
/// no serialisation through a single reducer; `MPI_Allreduce` over Open MPI's shared-memory transport
/// moves the data through more copies (PLATFORM.md: this path is 2–6× faster for large buffers).
///
/// Successive steps alternate between the two halves of every segment, so a rank may fill one half while
/// a slower peer still reads the other; a step therefore needs one synchronisation after the copy-in
/// (plus one before the copy-back for an all-reduce) and none at its start.
extension MPICommunicator {
    /// The window for this communicator, large enough for the current policy, and the bytes per rank
    /// per step that the policy asks for (a multiple of 64, at most half a segment). Collective: all ranks
    /// reach it together because the algorithm choice is the same on all of them.
    private func sharedWindow(
        _ context: CollectiveContext
    ) throws(CommunicatorError) -> (window: MPISharedWindow, stepBytes: Int) {
        let (existing, policy) = state.withLock { ($0.window, $0.policy) }
        let stepBytes = max(64, policy.chunkBytes / 64 * 64)
        // Two halves per segment; a reduce-scatter step needs at least one cache line per rank.
        let wanted = 2 * max(stepBytes, 64 * size, 4096)
        if let existing, existing.segmentBytes >= wanted { return (existing, stepBytes) }
        guard isSingleNode else {
            throw context.invalid("the shared-memory algorithm needs all ranks on one node")
        }
        if let existing { try existing.free(context) }
        let window = try MPISharedWindow.allocate(
            comm: handle.comm, size: size, segmentBytes: wanted, context: context)
        state.withLock { $0.window = window }
        return (window, stepBytes)
    }

    /// In-place all-reduce of `count` elements at `base`.
    func sharedMemoryAllReduce(
        _ base: UnsafeMutableRawPointer, count: Int, kind: CollectiveElementKind, op: ReduceOp,
        context: CollectiveContext
    ) throws(CommunicatorError) {
        let (window, stepBytes) = try sharedWindow(context)
        let stride = kind.byteCount
        let halfBytes = window.segmentBytes / 2
        let chunkElements = stepBytes / stride
        let unit = max(1, 64 / stride)  // slices start on cache lines, so no two ranks write one line
        var start = 0
        while start < count {
            let n = min(chunkElements, count - start)
            let half = window.nextHalf * halfBytes
            window.nextHalf ^= 1
            let chunk = base + start * stride
            (window.segments[rank] + half).copyMemory(from: chunk, byteCount: n * stride)
            try window.sync(context)

            let mine = Self.slice(of: rank, parts: size, count: n, unit: unit)
            let sources = window.segments.map { UnsafeRawPointer($0 + half) }
            Self.reduceBlocked(
                sources, elementOffset: mine.lowerBound, into: chunk + mine.lowerBound * stride,
                mirror: window.segments[rank] + half + mine.lowerBound * stride,
                count: mine.count, kind: kind, op: op)
            try window.sync(context)

            for peer in 0..<size where peer != rank {
                let theirs = Self.slice(of: peer, parts: size, count: n, unit: unit)
                guard !theirs.isEmpty else { continue }
                (chunk + theirs.lowerBound * stride).copyMemory(
                    from: window.segments[peer] + half + theirs.lowerBound * stride,
                    byteCount: theirs.count * stride)
            }
            start += n
        }
    }

    /// Reduce-scatter of `input` (rank r's share at `offsets[r]`, `counts[r]` elements) into `output`.
    /// Each step carries the next piece of every rank's share, so all ranks reduce in parallel.
    func sharedMemoryReduceScatter(
        _ input: UnsafeRawPointer, counts: [Int], offsets: [Int], output: UnsafeMutableRawPointer?,
        kind: CollectiveElementKind, op: ReduceOp, context: CollectiveContext
    ) throws(CommunicatorError) {
        let (window, stepBytes) = try sharedWindow(context)
        let stride = kind.byteCount
        let halfBytes = window.segmentBytes / 2
        let unit = max(1, 64 / stride)
        // Each step carries `stepBytes` in all, split into one cache-line-aligned piece per rank.
        let pieceElements = max(unit, stepBytes / size / stride / unit * unit)
        let longest = counts.max() ?? 0
        var start = 0
        while start < longest {
            let half = window.nextHalf * halfBytes
            window.nextHalf ^= 1
            let segment = window.segments[rank] + half
            for peer in 0..<size {
                let n = min(pieceElements, max(0, counts[peer] - start))
                guard n > 0 else { continue }
                (segment + peer * pieceElements * stride).copyMemory(
                    from: input + (offsets[peer] + start) * stride, byteCount: n * stride)
            }
            try window.sync(context)

            let n = min(pieceElements, max(0, counts[rank] - start))
            if n > 0, let output {
                let sources = window.segments.map { UnsafeRawPointer($0 + half) }
                Self.reduceBlocked(
                    sources, elementOffset: rank * pieceElements, into: output + start * stride,
                    mirror: nil, count: n, kind: kind, op: op)
            }
            start += pieceElements
        }
    }

    /// The elements of a chunk of `count` that `rank` reduces: balanced over `parts`, in whole units.
    static func slice(of rank: Int, parts: Int, count: Int, unit: Int) -> Range<Int> {
        let units = (count + unit - 1) / unit
        let base = units / parts
        let extra = units % parts
        let lower = rank * base + min(rank, extra)
        let upper = lower + base + (rank < extra ? 1 : 0)
        return min(lower * unit, count)..<min(upper * unit, count)
    }

    /// Reduces `count` elements starting `elementOffset` elements into each source into `destination`
    /// (and copies the result to `mirror`), one cache-sized block at a time so that the copy to `mirror`
    /// reads from cache.
    private static func reduceBlocked(
        _ sources: [UnsafeRawPointer], elementOffset: Int, into destination: UnsafeMutableRawPointer,
        mirror: UnsafeMutableRawPointer?, count: Int, kind: CollectiveElementKind, op: ReduceOp
    ) {
        let stride = kind.byteCount
        let block = (32 << 10) / stride
        var blockSources = sources
        var done = 0
        while done < count {
            let n = min(block, count - done)
            let byteOffset = (elementOffset + done) * stride
            for i in sources.indices { blockSources[i] = sources[i] + byteOffset }
            let target = destination + done * stride
            ReductionKernels.reduce(blockSources, into: target, count: n, kind: kind, op: op)
            mirror?.advanced(by: done * stride).copyMemory(from: target, byteCount: n * stride)
            done += n
        }
    }
}
