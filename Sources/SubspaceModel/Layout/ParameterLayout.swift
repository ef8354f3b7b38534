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

/// The layer-major layout of a model's parameters in one flat float buffer.
///
/// The buffer is [embeddings | layer 0 | layer 1 | … | final norm, head]. Every layer is one contiguous
/// slice of the same padded size, so a ZeRO shard, a gradient bucket or a checkpoint shard can be
/// a layer, and one call covers it. Gradients and optimizer moments use the same layout.
/// Within a layer, q|k|v weights (and their biases) are adjacent, and so are the MLP's gate|up weights:
/// they form one [out, in] matrix each and are multiplied by one GEMM.
public struct ParameterLayout: Sendable {
    /// Slices start on 16-float (64-byte) boundaries.
    public static let alignment = 16

    public let config: ModelConfig
    public let entries: [LayoutEntry]
    /// The embedding slice, each layer's slice, the tail (final norm, head) slice.
    public let embeddingRange: Range<Int>
    public let layerRanges: [Range<Int>]
    public let tailRange: Range<Int>
    public let totalCount: Int
    private let index: [TensorRole: Int]

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
        if !c.tiedEmbeddings { align(); add(.outputHead, [c.vocabularySize, C]) }
        align()

        self.config = config
        self.entries = entries
        self.embeddingRange = embeddingRange
        self.layerRanges = layerRanges
        self.tailRange = tailStart..<cursor
        self.totalCount = cursor
        self.index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.role, $0) })
    }

    public func contains(_ role: TensorRole) -> Bool { index[role] != nil }

    /// The layout's blocks in order: 0 the embeddings, 1…L the layers, L+1 the tail. A block is the unit
    /// ZeRO shards, buckets and (at stage 3) gathers.
    public var blockRanges: [Range<Int>] { [embeddingRange] + layerRanges + [tailRange] }
    public var blockCount: Int { layerRanges.count + 2 }

    /// The block a tensor belongs to.
    public func block(of role: TensorRole) -> Int {
        switch role {
        case .tokenEmbedding, .positionEmbedding: 0
        case .layer(let l, _): l + 1
        case .finalNormWeight, .finalNormBias, .outputHead: layerRanges.count + 1
        }
    }

    /// The tensors of a block, in layout order.
    public func entries(inBlock b: Int) -> [LayoutEntry] { entries.filter { block(of: $0.role) == b } }

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
