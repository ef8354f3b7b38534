import SubspaceCore

/// bf16 copies of the blocks' parameters for `Precision.bf16` (see Ops/LinearPrecision.swift).
///
/// A block is converted when it is acquired and its copy is missing or stale, and the copy is kept until
/// the fp32 parameters change: every writer advances `Transformer.parameterVersion` (`parametersChanged()`:
/// the optimizer's update, loads, `setTensor`, LoRA merges; asking for `parameterStorage` counts as one),
/// so a training step converts each block once whatever its micro-batches, its backward and checkpoint
/// recomputation, and generation converts each block once for all its tokens. A model whose base weights
/// never change (LoRA) converts them once. Under a residency that gathers a block's parameters into a
/// buffer of its own (ZeRO-3), the copy lives only while the block does: it is dropped when the block is
/// released and made again at the next gather, so no more than the blocks in use are held.
final class LowPrecisionWeights {
    var blocks: [UnsafeMutablePointer<UInt16>?]
    var counts: [Int]
    /// Per block, what its copy was made from: the fp32 parameters' address and version.
    var sources: [(base: UnsafeMutablePointer<Float>, version: Int)?]
    /// Blocks converted so far (a test hook).
    var conversions = 0
    /// Test hook: convert at every acquire, as if no copy were ever current (the reference for keeping them).
    var convertsEveryUse = false
    let scratch = BF16Scratch()

    init(blockCount: Int) {
        blocks = Array(repeating: nil, count: blockCount)
        counts = Array(repeating: 0, count: blockCount)
        sources = Array(repeating: nil, count: blockCount)
    }

    deinit { for b in blocks { b?.deallocate() } }

    /// Converts block `b`'s `count` parameters at `source`.
    func convert(_ b: Int, from source: UnsafeMutablePointer<Float>, count: Int, version: Int) {
        if counts[b] != count {
            blocks[b]?.deallocate()
            blocks[b] = .allocate(capacity: max(count, 1))
            counts[b] = count
        }
        let dst = blocks[b]!
        Parallel.rows(count, minimumPerChunk: 65_536) { range in
            BFloat16.convert(source + range.lowerBound, to: dst + range.lowerBound, count: range.count)
        }
        sources[b] = (source, version)
        conversions += 1
    }

    func isCurrent(_ b: Int, source: UnsafeMutablePointer<Float>, version: Int) -> Bool {
        guard !convertsEveryUse, blocks[b] != nil, let made = sources[b] else { return false }
        return made.base == source && made.version == version
    }

    func drop(_ b: Int) {
        blocks[b]?.deallocate()
        (blocks[b], counts[b], sources[b]) = (nil, 0, nil)
    }

    /// Bytes of the bf16 copies now held.
    var bytes: Int { counts.reduce(0, +) * MemoryLayout<UInt16>.stride }
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

    /// The kernel of this model's bf16 products (nil in fp32): `BF16GEMM.backend` when `precision` was
    /// set to bf16 (what `BF16GEMM.require` chose), or set here (tests choose one per model).
    public var bf16Backend: BF16GEMM.Backend? {
        get { lowPrecision?.scratch.backend }
        set { if let newValue { lowPrecision?.scratch.backend = newValue } }
    }

    /// The fp32 parameters changed (or may have): every bf16 copy is remade at its block's next use.
    /// Whoever writes parameters other than through `parameterStorage`, `setTensor` or `initialize`
    /// (e.g. through a block the residency provides) calls it.
    public func parametersChanged() { parameterVersion &+= 1 }

    /// Blocks converted to bf16 so far (0 in fp32): a test hook for how often weights are converted.
    public var bf16Conversions: Int { lowPrecision?.conversions ?? 0 }

    /// Bytes of bf16 weight copies now held (0 in fp32).
    public var bf16WeightBytes: Int { lowPrecision?.bytes ?? 0 }

    /// A linear weight for `Linear`: with its bf16 copy in bf16 precision.
    func w(_ role: TensorRole) -> LinearWeight {
        let fp32 = p(role)
        guard let low = lowPrecision else { return LinearWeight(fp32) }
        let b = layout.block(of: role)
        guard let copy = low.blocks[b] else { preconditionFailure("bf16 copy of block \(b) missing for \(role.name)") }
        return LinearWeight(fp32: fp32, bf16: copy + (layout.offset(role) - layout.blockRanges[b].lowerBound), scratch: low.scratch)
    }

    /// Vocabulary slice `s` of a sliced tensor as a linear weight ([V_s, C]), with its bf16 copy in bf16.
    func sliceW(_ role: TensorRole, _ s: Int) -> LinearWeight {
        let b = layout.sliceBlocks(of: role).lowerBound + s
        let fp32 = parameterBase[b]
        guard let low = lowPrecision else { return LinearWeight(fp32) }
        guard let copy = low.blocks[b] else { preconditionFailure("bf16 copy of block \(b) missing for \(role.name) slice \(s)") }
        return LinearWeight(fp32: fp32, bf16: copy, scratch: low.scratch)
    }

    /// After `acquire`: converts the block unless its copy was made from the same parameters (address
    /// and version).
    func convertAcquired(_ b: Int) {
        guard let low = lowPrecision else { return }
        let source = parameterBase[b]
        if !low.isCurrent(b, source: source, version: parameterVersion) {
            low.convert(b, from: source, count: layout.blockRanges[b].count, version: parameterVersion)
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
