import SubspaceCore

/// bf16 copies of the blocks' parameters for `Precision.bf16` (see Ops/LinearPrecision.swift).
///
/// A block is converted when the forward pass acquires it — once per forward pass, not per product —
/// and the copy serves that pass's backward. Under a residency that gathers a block's parameters into a
/// buffer of its own (ZeRO-3), the copy lives only while the block does: it is dropped when the block
/// is released and made again when backward acquires it, so no more than the blocks in use are held.
final class LowPrecisionWeights {
    var blocks: [UnsafeMutablePointer<UInt16>?]
    var counts: [Int]
    let scratch = BF16Scratch()

    init(blockCount: Int) {
        blocks = Array(repeating: nil, count: blockCount)
        counts = Array(repeating: 0, count: blockCount)
    }

    deinit { for b in blocks { b?.deallocate() } }

    /// Converts block `b`'s `count` parameters at `source`.
    func convert(_ b: Int, from source: ConstFloatPointer, count: Int) {
        if counts[b] != count {
            blocks[b]?.deallocate()
            blocks[b] = .allocate(capacity: max(count, 1))
            counts[b] = count
        }
        let dst = blocks[b]!
        Parallel.rows(count, minimumPerChunk: 65_536) { range in
            BFloat16.convert(source + range.lowerBound, to: dst + range.lowerBound, count: range.count)
        }
    }

    func drop(_ b: Int) {
        blocks[b]?.deallocate()
        (blocks[b], counts[b]) = (nil, 0)
    }
}

extension Transformer {
    /// The precision of the linear layers' and the output head's products (fp32 by default). bf16 needs
    /// `BF16GEMM.require` to have passed (the commands and the trainer call it at start-up).
    public var precision: Precision {
        get { lowPrecision == nil ? .fp32 : .bf16 }
        set {
            guard newValue != precision else { return }
            lowPrecision = newValue == .bf16 ? LowPrecisionWeights(blockCount: layout.blockCount) : nil
        }
    }

    /// A linear weight for `Linear`: with its bf16 copy in bf16 precision.
    func w(_ role: TensorRole) -> LinearWeight {
        let fp32 = p(role)
        guard let low = lowPrecision else { return LinearWeight(fp32) }
        let b = layout.block(of: role)
        guard let copy = low.blocks[b] else { preconditionFailure("bf16 copy of block \(b) missing for \(role.name)") }
        return LinearWeight(fp32: fp32, bf16: copy + (layout.offset(role) - layout.blockRanges[b].lowerBound), scratch: low.scratch)
    }

    /// After `acquire`: forward converts the block; backward reuses the forward's copy when it was kept.
    func convertAcquired(_ b: Int, _ phase: BlockPhase) {
        guard let low = lowPrecision else { return }
        if phase == .forward || low.blocks[b] == nil {
            low.convert(b, from: parameterBase[b], count: layout.blockRanges[b].count)
        }
    }

    /// At `release`: a block whose parameters were gathered apart from the flat buffer (ZeRO-3) drops its copy.
    func dropReleased(_ b: Int) {
        guard let low = lowPrecision, b < parameterBase.count else { return }
        // Sharded parameters (no flat buffer, or a block outside it) are gathered per use.
        guard let flat = allocatedParameters?.pointer, !parametersSharded,
              parameterBase[b] >= flat && parameterBase[b] < flat + max(layout.totalCount, 1) else { low.drop(b); return }
    }
}
