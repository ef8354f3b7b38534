import SubspaceCore

/// A raw float buffer that lives as long as its owner: kernels take its pointer directly.
typealias Buffer = TensorStorage

/// Every buffer a forward and backward pass of one (B, T) shape needs, allocated once and reused, so
/// steady-state steps allocate nothing. Legend: N = B·T rows, C width, S fused qkv width, I MLP width.
final class ActivationBuffers {
    let B: Int, T: Int
    var N: Int { B * T }

    var ids: [Int32]
    var targets: [Int32]
    /// Residual stream entering each layer, plus the final one: (L + 1) × [N, C].
    var residual: [Buffer]
    /// Residual after each layer's attention: L × [N, C].
    var residualMid: [Buffer]
    /// Per layer: norm outputs and statistics, fused qkv (after rotary), attention rows' logsumexp
    /// [B, H, T] (the tiled attention keeps no probabilities), attention output, MLP pre-activation
    /// (gate|up or up) and activation.
    var norm1: [Buffer], norm1Mean: [Buffer], norm1Rstd: [Buffer]
    var qkv: [Buffer], lse: [Buffer], attnOut: [Buffer]
    var norm2: [Buffer], norm2Mean: [Buffer], norm2Rstd: [Buffer]
    var mlpPre: [Buffer], mlpAct: [Buffer]
    var finalNorm: Buffer, finalMean: Buffer, finalRstd: Buffer
    var logits: Buffer

    /// Dropout masks (0 or 1/keep) when dropout is on: per layer the attention and MLP branches, and the
    /// embedding output; plus a branch buffer for the forward and one for the backward.
    var attentionMask: [Buffer] = [], mlpMask: [Buffer] = []
    var embeddingMask: Buffer?, branch: Buffer?, dBranch: Buffer?

    func allocateDropout(layers L: Int, width C: Int) {
        guard embeddingMask == nil else { return }
        attentionMask = (0..<L).map { _ in Buffer(capacity: N * C) }
        mlpMask = (0..<L).map { _ in Buffer(capacity: N * C) }
        embeddingMask = Buffer(capacity: N * C)
        branch = Buffer(capacity: N * C)
        dBranch = Buffer(capacity: N * C)
    }

    // Gradient scratch (allocated on first backward).
    var dResidual: Buffer?, dNorm: Buffer?, dQKV: Buffer?, dAttnOut: Buffer?, dMLPPre: Buffer?, dMLPAct: Buffer?
    var dLogits: Buffer?
    /// Attention's per-worker tiles, shared by forward and backward; grown when a kernel asks for more
    /// (the worker count can change between passes).
    var attentionScratch: Buffer?

    func attentionScratch(count: Int) -> FloatPointer {
        if (attentionScratch?.capacity ?? 0) < count { attentionScratch = Buffer(capacity: count) }
        return attentionScratch!.pointer
    }

    init(config c: ModelConfig, B: Int, T: Int) {
        self.B = B
        self.T = T
        let N = B * T, C = c.hiddenSize, L = c.layerCount
        let mlpPreWidth = c.gatedMLP ? 2 * c.intermediateSize : c.intermediateSize
        func many(_ shape: [Int], _ n: Int = L) -> [Buffer] { (0..<n).map { _ in Buffer(capacity: shape.reduce(1, *)) } }
        ids = [Int32](repeating: 0, count: N)
        targets = [Int32](repeating: -1, count: N)
        residual = many([N, C], L + 1)
        residualMid = many([N, C])
        norm1 = many([N, C]); norm1Mean = many([N]); norm1Rstd = many([N])
        qkv = many([N, c.qkvWidth]); lse = many([B, c.headCount, T]); attnOut = many([N, c.queryWidth])
        norm2 = many([N, C]); norm2Mean = many([N]); norm2Rstd = many([N])
        mlpPre = many([N, mlpPreWidth]); mlpAct = many([N, c.intermediateSize])
        finalNorm = Buffer(capacity: N*C); finalMean = Buffer(capacity: N); finalRstd = Buffer(capacity: N)
        logits = Buffer(capacity: N*c.vocabularySize)
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
        dLogits = Buffer(capacity: N*c.vocabularySize)
    }
}

