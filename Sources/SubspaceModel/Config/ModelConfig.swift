/// The transformer families Subspace implements, named as HF's `model_type`.
public enum ModelFamily: String, Sendable, Codable, CaseIterable {
    /// LayerNorm with bias, GELU (tanh), learned positions, biases everywhere, tied head.
    case gpt2
    /// RMSNorm, rotary positions, SwiGLU, grouped-query attention, no biases.
    case llama
    /// Llama with q/k/v biases.
    case qwen2
}

/// The shape of a transformer: everything the layout and the kernels need.
public struct ModelConfig: Sendable, Equatable, Codable {
    public var family: ModelFamily
    public var vocabularySize: Int
    /// C, the residual width.
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    /// Key/value heads (grouped-query attention); equals `headCount` for multi-head attention.
    public var keyValueHeadCount: Int
    public var headDimension: Int
    /// Width of the MLP's hidden layer.
    public var intermediateSize: Int
    /// Longest sequence (GPT-2's learned position table; the rotary families' nominal limit).
    public var maxPositions: Int
    public var normEpsilon: Float
    public var ropeTheta: Float
    /// Rotary scaling (`rope_scaling` / `rope_parameters` of config.json); nil: none.
    public var ropeScaling: RotaryScaling? = nil
    public var tiedEmbeddings: Bool
    /// Biases on the q/k/v projections (GPT-2, Qwen2).
    public var attentionBias: Bool
    /// Biases on the output projection and the MLP (GPT-2).
    public var projectionBias: Bool

    public init(
        family: ModelFamily, vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int,
        keyValueHeadCount: Int? = nil, headDimension: Int? = nil, intermediateSize: Int? = nil,
        maxPositions: Int = 1024, normEpsilon: Float? = nil, ropeTheta: Float = 10000,
        tiedEmbeddings: Bool? = nil
    ) {
        self.family = family
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount ?? headCount
        self.headDimension = headDimension ?? (headCount > 0 ? hiddenSize / headCount : 0)
        self.intermediateSize = intermediateSize ?? (family == .gpt2 ? 4 * hiddenSize : (8 * hiddenSize / 3 + 63) / 64 * 64)
        self.maxPositions = maxPositions
        self.normEpsilon = normEpsilon ?? (family == .gpt2 ? 1e-5 : 1e-6)
        self.ropeTheta = ropeTheta
        self.tiedEmbeddings = tiedEmbeddings ?? (family == .gpt2)
        self.attentionBias = family != .llama
        self.projectionBias = family == .gpt2
    }

    /// Width of the query projection's output, `headCount · headDimension`.
    public var queryWidth: Int { headCount * headDimension }
    /// Width of the key (and value) projection's output.
    public var keyValueWidth: Int { keyValueHeadCount * headDimension }
    /// Width of the fused q|k|v activation.
    public var qkvWidth: Int { queryWidth + 2 * keyValueWidth }
    public var usesRotary: Bool { family != .gpt2 }
    public var gatedMLP: Bool { family != .gpt2 }

    /// Every way the numbers can disagree with each other, as messages naming the field.
    public func problems() -> [String] {
        var out: [String] = []
        func need(_ ok: Bool, _ message: String) { if !ok { out.append(message) } }
        // Bounded first: the checks below multiply sizes, which must not overflow.
        let sizes = [("vocab_size", vocabularySize), ("hidden size", hiddenSize), ("layer count", layerCount), ("head count", headCount),
                     ("key/value heads", keyValueHeadCount), ("head dimension", headDimension),
                     ("intermediate size", intermediateSize), ("max positions", maxPositions)]
        for (name, value) in sizes where value >= 1 << 31 { out.append("\(name) \(value) is larger than any model Subspace can hold (< 2^31)") }
        guard out.isEmpty else { return out }
        need(vocabularySize >= 1, "vocab_size must be ≥ 1, got \(vocabularySize)")
        need(hiddenSize >= 1, "hidden size must be ≥ 1, got \(hiddenSize)")
        need(layerCount >= 1, "layer count must be ≥ 1, got \(layerCount)")
        need(headCount >= 1, "head count must be ≥ 1, got \(headCount)")
        need(keyValueHeadCount >= 1 && headCount % max(keyValueHeadCount, 1) == 0,
             "key/value heads (\(keyValueHeadCount)) must divide the attention heads (\(headCount))")
        need(headDimension >= 1, "head dimension must be ≥ 1, got \(headDimension)")
        need(!usesRotary || headDimension % 2 == 0, "rotary positions need an even head dimension, got \(headDimension)")
        need(family != .gpt2 || queryWidth == hiddenSize,
             "gpt2 needs heads × head dimension (\(queryWidth)) = hidden size (\(hiddenSize))")
        need(intermediateSize >= 1, "intermediate size must be ≥ 1, got \(intermediateSize)")
        need(maxPositions >= 1, "max positions must be ≥ 1, got \(maxPositions)")
        need(normEpsilon > 0, "norm epsilon must be > 0, got \(normEpsilon)")
        need(ropeTheta > 0, "rope theta must be > 0, got \(ropeTheta)")
        return out
    }
}
