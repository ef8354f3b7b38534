/// The tensors of one transformer layer, by role. Weights are stored [out, in] (PyTorch's Linear).
public enum LayerTensor: String, Sendable, CaseIterable {
    case norm1Weight = "norm1.weight", norm1Bias = "norm1.bias"
    case q = "attn.q.weight", k = "attn.k.weight", v = "attn.v.weight"
    case qBias = "attn.q.bias", kBias = "attn.k.bias", vBias = "attn.v.bias"
    case o = "attn.o.weight", oBias = "attn.o.bias"
    case norm2Weight = "norm2.weight", norm2Bias = "norm2.bias"
    case gate = "mlp.gate.weight", up = "mlp.up.weight", upBias = "mlp.up.bias"
    case down = "mlp.down.weight", downBias = "mlp.down.bias"
}

/// Where a tensor sits in the model.
public enum TensorRole: Sendable, Hashable {
    case tokenEmbedding
    case positionEmbedding
    case layer(Int, LayerTensor)
    case finalNormWeight
    case finalNormBias
    /// The output projection when it is not tied to the token embedding.
    case outputHead

    /// Subspace's own name for the tensor (HF names are in `HFNaming`).
    public var name: String {
        switch self {
        case .tokenEmbedding: "embed.weight"
        case .positionEmbedding: "pos.weight"
        case .layer(let i, let t): "layers.\(i).\(t.rawValue)"
        case .finalNormWeight: "norm.weight"
        case .finalNormBias: "norm.bias"
        case .outputHead: "head.weight"
        }
    }

    public var layerIndex: Int? {
        if case .layer(let i, _) = self { return i }
        return nil
    }
}

/// One tensor's place in the flat buffer.
public struct LayoutEntry: Sendable, Equatable {
    public let role: TensorRole
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
    public var name: String { role.name }
}

/// What a block of the layout holds (`ParameterLayout.blockKind`): ZeRO keeps one buffer per kind.
public enum BlockKind: Sendable, Hashable {
    /// A range of vocabulary rows of the token embedding or of an untied output head.
    case vocabularySlice
    /// GPT-2's learned position embedding.
    case positionEmbedding
    case layer
    /// The final norm's weight (and bias).
    case finalNorm
}

/// The layer-major layout of a model's parameters in one flat float buffer.
///
/// The buffer is [embeddings | layer 0 | layer 1 | … | final norm, head]. Every layer is one contiguous
/// slice of the same padded size, so a ZeRO shard, a gradient bucket or a checkpoint shard can be
/// a layer, and one call covers it. Gradients and optimizer moments use the same layout.
/// Within a layer, q|k|v weights (and their biases) are adjacent, and so are the MLP's gate|up weights:
/// they form one [out, in] matrix each and are multiplied by one GEMM.
///
/// The vocabulary-sized tensors (token embedding, untied output head) are cut into blocks of whole
/// vocabulary rows (`vocabularyRows`), each about a layer block or smaller, so that no block — the
/// unit ZeRO-3 gathers, and stages 2–3 reduce-scatter — is much larger than a layer. The tensors stay
/// contiguous in the flat buffer (the cuts move no element).
public struct ParameterLayout: Sendable {
    /// Slices start on 16-float (64-byte) boundaries.
    public static let alignment = 16

    public let config: ModelConfig
    public let entries: [LayoutEntry]
    /// The embedding slice (token and position embeddings), each layer's slice, the tail (final norm,
    /// head) slice.
    public let embeddingRange: Range<Int>
    public let layerRanges: [Range<Int>]
    public let tailRange: Range<Int>
    public let totalCount: Int
    /// The row ranges of the vocabulary slices, the same for the token embedding and an untied head.
    public let vocabularyRows: [Range<Int>]
    /// The layout's blocks in order: the token embedding's vocabulary slices, GPT-2's position
    /// embedding, the layers, the final norm, an untied head's vocabulary slices. A block is the unit
    /// ZeRO shards, buckets and (at stage 3) gathers; the blocks tile the flat buffer.
    public let blockRanges: [Range<Int>]
    public let blockKinds: [BlockKind]
    /// Block indices: the token embedding's slices, the position embedding's, the first layer's, the
    /// final norm's, an untied head's slices (nil when tied).
    public let tokenEmbeddingBlocks: Range<Int>
    public let positionBlock: Int?
    public let firstLayerBlock: Int
    public let finalNormBlock: Int
    public let outputHeadBlocks: Range<Int>?
    private let index: [TensorRole: Int]

    /// How many vocabulary slices a model has: enough that each is at most about a layer block
    /// (ceil(V·C / layer block)), one when the vocabulary fits in a layer or there are no layers.
    public static func vocabularySliceCount(config c: ModelConfig, layerBlock: Int) -> Int {
        guard layerBlock > 0 else { return 1 }
        let total = c.vocabularySize * c.hiddenSize
        return max(1, min(c.vocabularySize, (total + layerBlock - 1) / layerBlock))
    }

    public init(config: ModelConfig) {
        let c = config
        let C = c.hiddenSize
        var entries: [LayoutEntry] = []
        var cursor = 0
        func align() { cursor = (cursor + Self.alignment - 1) / Self.alignment * Self.alignment }
        func add(_ role: TensorRole, _ shape: [Int]) {
            entries.append(LayoutEntry(role: role, shape: shape, offset: cursor))
            cursor += shape.reduce(1, *)
        }

        add(.tokenEmbedding, [c.vocabularySize, C])
        let tokenEnd = cursor
        if c.family == .gpt2 { align(); add(.positionEmbedding, [c.maxPositions, C]) }
        align()
        let embeddingRange = 0..<cursor

        var layerRanges: [Range<Int>] = []
        for l in 0..<c.layerCount {
            let start = cursor
            let hasNormBias = c.family == .gpt2
            add(.layer(l, .norm1Weight), [C])
            if hasNormBias { add(.layer(l, .norm1Bias), [C]) }
            align()
            add(.layer(l, .q), [c.queryWidth, C])      // q|k|v adjacent: one [qkvWidth, C] matrix
            add(.layer(l, .k), [c.keyValueWidth, C])
            add(.layer(l, .v), [c.keyValueWidth, C])
            if c.attentionBias {
                align()
                add(.layer(l, .qBias), [c.queryWidth])
                add(.layer(l, .kBias), [c.keyValueWidth])
                add(.layer(l, .vBias), [c.keyValueWidth])
            }
            align(); add(.layer(l, .o), [C, c.queryWidth])
            if c.projectionBias { align(); add(.layer(l, .oBias), [C]) }
            align(); add(.layer(l, .norm2Weight), [C])
            if hasNormBias { add(.layer(l, .norm2Bias), [C]) }
            align()
            if c.gatedMLP { add(.layer(l, .gate), [c.intermediateSize, C]) }  // gate|up adjacent
            add(.layer(l, .up), [c.intermediateSize, C])
            if c.projectionBias { align(); add(.layer(l, .upBias), [c.intermediateSize]) }
            align(); add(.layer(l, .down), [C, c.intermediateSize])
            if c.projectionBias { align(); add(.layer(l, .downBias), [C]) }
            align()
            layerRanges.append(start..<cursor)
        }

        let tailStart = cursor
        add(.finalNormWeight, [C])
        if c.family == .gpt2 { add(.finalNormBias, [C]) }
        var headStart: Int?
        if !c.tiedEmbeddings { align(); headStart = cursor; add(.outputHead, [c.vocabularySize, C]) }
        align()

        // Vocabulary slices of whole rows, balanced, each about a layer block at most.
        let slices = Self.vocabularySliceCount(config: c, layerBlock: layerRanges.first?.count ?? 0)
        let rows = (0..<slices).map { s in (s * c.vocabularySize / slices)..<((s + 1) * c.vocabularySize / slices) }
        var blocks: [Range<Int>] = [], kinds: [BlockKind] = []
        /// A tensor's slices from `start`; the last one runs to `end` (the padding after it).
        func addSlices(start: Int, end: Int) -> Range<Int> {
            let first = blocks.count
            for (s, r) in rows.enumerated() {
                blocks.append((start + r.lowerBound * C)..<(s == rows.count - 1 ? end : start + r.upperBound * C))
                kinds.append(.vocabularySlice)
            }
            return first..<blocks.count
        }
        let tokenBlocks = addSlices(start: 0, end: c.family == .gpt2 ? tokenEnd : embeddingRange.upperBound)
        var positionBlock: Int?
        if c.family == .gpt2 {
            positionBlock = blocks.count
            blocks.append(tokenEnd..<embeddingRange.upperBound)
            kinds.append(.positionEmbedding)
        }
        let firstLayerBlock = blocks.count
        for r in layerRanges { blocks.append(r); kinds.append(.layer) }
        let finalNormBlock = blocks.count
        blocks.append(tailStart..<(headStart ?? cursor))
        kinds.append(.finalNorm)
        let headBlocks = headStart.map { addSlices(start: $0, end: cursor) }

        self.config = config
        self.entries = entries
        self.embeddingRange = embeddingRange
        self.layerRanges = layerRanges
        self.tailRange = tailStart..<cursor
        self.totalCount = cursor
        self.vocabularyRows = rows
        self.blockRanges = blocks
        self.blockKinds = kinds
        self.tokenEmbeddingBlocks = tokenBlocks
        self.positionBlock = positionBlock
        self.firstLayerBlock = firstLayerBlock
        self.finalNormBlock = finalNormBlock
        self.outputHeadBlocks = headBlocks
        self.index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.role, $0) })
    }

    public func contains(_ role: TensorRole) -> Bool { index[role] != nil }

    public var blockCount: Int { blockRanges.count }

    /// The block of layer `l`.
    public func layerBlock(_ l: Int) -> Int { firstLayerBlock + l }

    /// Whether a tensor is cut into vocabulary slices (several blocks).
    public func isSliced(_ role: TensorRole) -> Bool {
        switch role {
        case .tokenEmbedding, .outputHead: true
        default: false
        }
    }

    /// The blocks of a sliced tensor (token embedding, untied output head), one per vocabulary slice.
    public func sliceBlocks(of role: TensorRole) -> Range<Int> {
        switch role {
        case .tokenEmbedding: return tokenEmbeddingBlocks
        case .outputHead:
            guard let h = outputHeadBlocks else { preconditionFailure("head.weight is not in this (tied) layout") }
            return h
        default: preconditionFailure("\(role.name) is not cut into vocabulary slices")
        }
    }

    /// The block a tensor that is not sliced belongs to (a sliced one: `sliceBlocks(of:)`).
    public func block(of role: TensorRole) -> Int {
        switch role {
        case .tokenEmbedding, .outputHead:
            let blocks = sliceBlocks(of: role)
            precondition(blocks.count == 1, "\(role.name) spans blocks \(blocks); use sliceBlocks(of:)")
            return blocks.lowerBound
        case .positionEmbedding: return positionBlock!
        case .layer(let l, _): return layerBlock(l)
        case .finalNormWeight, .finalNormBias: return finalNormBlock
        }
    }

    /// The blocks a tensor's elements lie in.
    public func blocks(of role: TensorRole) -> Range<Int> {
        isSliced(role) ? sliceBlocks(of: role) : block(of: role)..<(block(of: role) + 1)
    }

    /// The tensors with elements in block `b`, in layout order (whole entries: a sliced tensor's entry
    /// is listed in each of its blocks; clamp its range to the block's).
    public func entries(inBlock b: Int) -> [LayoutEntry] { entries.filter { blocks(of: $0.role).contains(b) } }

    public subscript(role: TensorRole) -> LayoutEntry {
        guard let i = index[role] else { preconditionFailure("\(role.name) is not in this \(config.family.rawValue) layout") }
        return entries[i]
    }

    public func entry(named name: String) -> LayoutEntry? { entries.first { $0.name == name } }

    /// Offset of a tensor in the flat buffer.
    public func offset(_ role: TensorRole) -> Int { self[role].offset }

    /// Parameters that are actually used (excluding padding).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }
}
