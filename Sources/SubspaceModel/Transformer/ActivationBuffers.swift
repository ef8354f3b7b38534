import SubspaceCore

/// A raw float buffer that lives as long as its owner: kernels take its pointer directly.
typealias Buffer = TensorStorage

/// Whether `Transformer.forward` keeps every layer's activations for backward (`none`) or only each
/// layer's input, recomputing the layer in backward (`layers`); with `layers` the output head and the
/// loss also run a chunk of rows at a time, so [B·T, vocab] is never held whole. Gradients are the same
/// bit for bit.
public enum ActivationCheckpointing: String, Sendable, CaseIterable {
    case none, layers
}

/// Every buffer a forward and backward pass of one (B, T) shape needs, allocated once and reused, so
/// steady-state steps allocate nothing. Legend: N = B·T rows, C width, V vocabulary.
final class ActivationBuffers {
    let B: Int, T: Int
    let checkpointing: ActivationCheckpointing
    var N: Int { B * T }

    var ids: [Int32]
    var targets: [Int32]
    /// Residual stream entering each layer, plus the final one: (L + 1) × [N, C] (kept in both modes).
    var residual: [Buffer]
    /// Per layer what its backward reads (L of them), or one shared by all layers when checkpointing.
    var layers: [LayerActivations]
    func layer(_ l: Int) -> LayerActivations { layers[checkpointing == .layers ? 0 : l] }
    var finalNorm: Buffer, finalMean: Buffer, finalRstd: Buffer
    /// Rows of the output head per chunk: the head and the loss run chunk by chunk in both modes (so the
    /// float sums are the same with and without checkpointing).
    let headRows: Int
    /// All logits, when kept (no checkpointing, or a forward without targets), vocabulary slice by slice
    /// ([N, V_s] for each slice in turn); backward writes their gradient in place of them. Otherwise one
    /// tile [headRows, V_s] (the widest slice), logits then their gradient.
    var logits: Buffer?
    var logitsChunk: Buffer?
    /// Per row: the online softmax's running max and Σ exp over the slices seen, the target's logit,
    /// and after the last slice log Σ exp (what backward's ∂logits need), [N] each.
    var rowMax: Buffer, rowSum: Buffer, targetLogit: Buffer, logSumExp: Buffer
    /// Whether `logits` holds the last forward's logits (false after backward overwrote them).
    var logitsValid = false
    /// Whether the head's backward left every tile's ∂L/∂logits in `logits` (read by the tied embedding's
    /// weight gradient at the end of backward; otherwise it recomputes them).
    var headGradientsKept = false
    /// Each position's cross-entropy (0 where ignored), from the last forward with targets.
    var positionLosses: [Double]

    /// Dropout: the embedding output's mask [N, C], and a branch buffer for the forward and one for the
    /// backward [N, C]; each layer's masks are in its `LayerActivations`.
    var embeddingMask: Buffer?, branch: Buffer?, dBranch: Buffer?
    /// The dropout stream of the last forward (a recomputation draws the same masks from it).
    var dropoutPass: RandomStream?

    func allocateDropout(config c: ModelConfig) {
        for s in layers { s.allocateDropout(width: c.hiddenSize) }
        guard embeddingMask == nil else { return }
        embeddingMask = Buffer(capacity: N * c.hiddenSize)
        branch = Buffer(capacity: N * c.hiddenSize)
        dBranch = Buffer(capacity: N * c.hiddenSize)
    }

    // Gradient scratch (allocated on first backward).
    var dResidual: Buffer?, dNorm: Buffer?, dQKV: Buffer?, dAttnOut: Buffer?, dMLPPre: Buffer?, dMLPAct: Buffer?
    /// Attention's per-worker tiles, shared by forward and backward; grown when a kernel asks for more
    /// (the worker count can change between passes).
    var attentionScratch: Buffer?

    func attentionScratch(count: Int) -> FloatPointer {
        if (attentionScratch?.capacity ?? 0) < count { attentionScratch = Buffer(capacity: count) }
        return attentionScratch!.pointer
    }

    init(config c: ModelConfig, B: Int, T: Int, checkpointing: ActivationCheckpointing, headRows: Int) {
        self.B = B
        self.T = T
        self.checkpointing = checkpointing
        let N = B * T, C = c.hiddenSize, L = c.layerCount
        ids = [Int32](repeating: 0, count: N)
        targets = [Int32](repeating: -1, count: N)
        residual = (0...L).map { _ in Buffer(capacity: N * C) }
        layers = (0..<(checkpointing == .layers ? 1 : L)).map { _ in
            LayerActivations(config: c, rows: N, logsumexpCount: B * c.headCount * T)
        }
        finalNorm = Buffer(capacity: N * C); finalMean = Buffer(capacity: N); finalRstd = Buffer(capacity: N)
        self.headRows = headRows
        positionLosses = [Double](repeating: 0, count: N)
        rowMax = Buffer(capacity: N); rowSum = Buffer(capacity: N); targetLogit = Buffer(capacity: N); logSumExp = Buffer(capacity: N)
    }

    /// The whole-logits buffer, made on first use.
    func allLogits(vocabulary V: Int) -> Buffer {
        if let logits { return logits }
        let b = Buffer(capacity: N * V)
        logits = b
        return b
    }

    /// The one-tile logits buffer ([headRows, widest slice]), made on first use.
    func chunkLogits(sliceWidth V: Int) -> Buffer {
        if let logitsChunk { return logitsChunk }
        let b = Buffer(capacity: headRows * V)
        logitsChunk = b
        return b
    }

    func allocateGradientScratch(config c: ModelConfig) {
        guard dResidual == nil else { return }
        let N = B * T
        dResidual = Buffer(capacity: N*c.hiddenSize)
        dNorm = Buffer(capacity: N*c.hiddenSize)
        dQKV = Buffer(capacity: N*c.qkvWidth)
        dAttnOut = Buffer(capacity: N*c.queryWidth)
        dMLPPre = Buffer(capacity: N * (c.gatedMLP ? 2 * c.intermediateSize : c.intermediateSize))
        dMLPAct = Buffer(capacity: N*c.intermediateSize)
    }
}
