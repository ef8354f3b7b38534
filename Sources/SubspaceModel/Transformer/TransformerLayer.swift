import SubspaceCore

/// What one layer's forward writes and its backward reads, for N = B·T rows. Legend: C width, S fused
/// qkv width, Q query width, I MLP width. Training without checkpointing keeps one per layer; with
/// checkpointing one is shared by every layer (the layer is recomputed into it in backward); generation
/// uses one for the new rows.
final class LayerActivations {
    let rows: Int
    /// norm1 output and statistics [N, C], [N], [N]; qkv [N, S] (after rotary); each attention row's
    /// logsumexp [B, H, T] (what the tiled attention keeps for backward); attention output [N, Q]; residual after
    /// attention [N, C]; norm2 output and statistics; MLP pre-activation [N, 2I] (gate|up) or [N, I]; MLP
    /// activation [N, I].
    let norm1: Buffer, norm1Mean: Buffer, norm1Rstd: Buffer
    let qkv: Buffer, lse: Buffer, attnOut: Buffer, mid: Buffer
    let norm2: Buffer, norm2Mean: Buffer, norm2Rstd: Buffer
    let mlpPre: Buffer, mlpAct: Buffer
    /// Dropout masks (0 or 1/keep) of the attention and MLP branches [N, C], when dropout is on.
    var attentionMask: Buffer?, mlpMask: Buffer?

    init(config c: ModelConfig, rows N: Int, logsumexpCount: Int) {
        rows = N
        let C = c.hiddenSize
        norm1 = Buffer(capacity: N * C); norm1Mean = Buffer(capacity: N); norm1Rstd = Buffer(capacity: N)
        qkv = Buffer(capacity: N * c.qkvWidth); lse = Buffer(capacity: max(1, logsumexpCount))
        attnOut = Buffer(capacity: N * c.queryWidth); mid = Buffer(capacity: N * C)
        norm2 = Buffer(capacity: N * C); norm2Mean = Buffer(capacity: N); norm2Rstd = Buffer(capacity: N)
        mlpPre = Buffer(capacity: N * (c.gatedMLP ? 2 : 1) * c.intermediateSize)
        mlpAct = Buffer(capacity: N * c.intermediateSize)
    }

    func allocateDropout(width C: Int) {
        guard attentionMask == nil else { return }
        attentionMask = Buffer(capacity: rows * C)
        mlpMask = Buffer(capacity: rows * C)
    }
}

/// How a layer's attention sees keys and values.
enum LayerAttention {
    /// Whole causal sequences (training, evaluation), through the tiled kernel with its per-worker
    /// `scratch`; the rows' logsumexp is kept in `LayerActivations.lse`.
    case causal(Attention, scratch: FloatPointer)
    /// New rows of one sequence at `position…` against a key/value cache (generation).
    case cached(KVCache, position: Int)
}

/// Dropout of one forward pass: where each layer's masks come from, and the branch buffer [N, C] the
/// attention and MLP outputs are masked in before they join the residual stream.
struct LayerDropout {
    let pass: RandomStream
    let probability: Float
    let branch: FloatPointer
    func attention(_ l: Int) -> RandomStream { pass.split(UInt64(1 + 2 * l)) }
    func mlp(_ l: Int) -> RandomStream { pass.split(UInt64(2 + 2 * l)) }
}

/// One transformer layer, pre-norm: x → x + attn(norm1(x)) → + mlp(norm2(·)). Its forward is the only
/// one: training, checkpoint recomputation and generation with the KV cache all call it; its backward is
/// the exact mirror. Parameters are read through the model (`Transformer.p`), so ZeRO's block residency
/// decides where they are; the caller acquires and releases the block.
struct TransformerLayer: Sendable {
    let index: Int
    let qkv: LinearOp, o: LinearOp, gateUp: LinearOp, down: LinearOp

    init(config: ModelConfig, index l: Int) {
        index = l
        qkv = LinearOp(config: config, layer: l, group: .qkv)
        o = LinearOp(config: config, layer: l, group: .o)
        gateUp = LinearOp(config: config, layer: l, group: .gateUp)
        down = LinearOp(config: config, layer: l, group: .down)
    }

    /// next = layer(x), keeping in `s` what backward needs. `next` may be `x` (generation updates the
    /// residual stream in place). With `observe`, the model's linear-input observer sees each group's input.
    /// `recompute` (checkpointing, in backward) refills `s` only: the layer's output is kept already, so
    /// the down projection's product and the last residual add are skipped (the MLP mask and the down
    /// adapters' state are still made).
    /// - x, next: [B·T, C]
    func forward(_ m: Transformer, x: ConstFloatPointer, next: FloatPointer, s: LayerActivations,
                 attention: LayerAttention, B: Int, T: Int, dropout: LayerDropout? = nil, observe: Bool = false,
                 recompute: Bool = false) {
        let c = m.config, l = index
        let (N, C, I) = (B * T, c.hiddenSize, c.intermediateSize)
        let positionOffset: Int
        if case .cached(_, let p) = attention { positionOffset = p } else { positionOffset = 0 }
        m.timed(.norm) {
            m.norm(out: s.norm1.pointer, mean: s.norm1Mean.pointer, rstd: s.norm1Rstd.pointer, inp: x,
                   weight: .layer(l, .norm1Weight), bias: .layer(l, .norm1Bias), N: N)
        }
        qkv.forward(m, out: s.qkv.pointer, inp: s.norm1.pointer, B: B, T: T, observe: observe)
        m.timed(.rotary) {
            m.rotary?.apply(qkv: s.qkv.pointer, rowStride: c.qkvWidth, queryHeads: c.headCount, kvHeads: c.keyValueHeadCount,
                            kOffset: c.queryWidth, B: B, T: T, positionOffset: positionOffset)
        }
        m.timed(.attention) {
            m.withGates(layer: l) { gates in
                switch attention {
                case .causal(let kernel, let scratch):
                    kernel.forward(out: s.attnOut.pointer, lse: s.lse.pointer, qkv: s.qkv.pointer, scratch: scratch, gates: gates)
                case .cached(let cache, let position):
                    cache.attend(layer: l, out: s.attnOut.pointer, qkv: s.qkv.pointer, T: T, position: position, gates: gates)
                }
            }
        }
        /// out = residual + op(inp). With dropout the branch is computed apart, masked (`mask`, drawn from
        /// the layer's `stream`), then added; without, it accumulates in place.
        func residualBranch(_ op: LinearOp, inp: ConstFloatPointer, residual: ConstFloatPointer, out: FloatPointer,
                            mask: Buffer?, stream: (LayerDropout) -> RandomStream) {
            m.timed(.residual) { out.update(from: residual, count: N * C) }
            op.forward(m, out: dropout?.branch ?? out, inp: inp, B: B, T: T, accumulate: dropout == nil, observe: observe)
            if let dropout {
                Dropout.forward(x: dropout.branch, mask: mask!.pointer, stream: stream(dropout), probability: dropout.probability, N: N, C: C)
                BLAS.axpy(count: N * C, alpha: 1, x: dropout.branch, y: out)
            }
        }
        let mid = s.mid.pointer
        residualBranch(o, inp: s.attnOut.pointer, residual: x, out: mid, mask: s.attentionMask) { $0.attention(l) }
        m.timed(.norm) {
            m.norm(out: s.norm2.pointer, mean: s.norm2Mean.pointer, rstd: s.norm2Rstd.pointer, inp: mid,
                   weight: .layer(l, .norm2Weight), bias: .layer(l, .norm2Bias), N: N)
        }
        gateUp.forward(m, out: s.mlpPre.pointer, inp: s.norm2.pointer, B: B, T: T, observe: observe)
        m.timed(.activation) {
            if c.gatedMLP {
                SwiGLU.forward(out: s.mlpAct.pointer, gateUp: s.mlpPre.pointer, N: N, I: I)
            } else {
                GELU.forward(out: s.mlpAct.pointer, inp: s.mlpPre.pointer, count: N * I)
            }
        }
        if recompute {
            if let dropout {
                Dropout.draw(mask: s.mlpMask!.pointer, stream: dropout.mlp(l), probability: dropout.probability, N: N, C: C)
            }
            m.adapters?.keepForBackward(layer: l, group: .down, inp: s.mlpAct.pointer, ldIn: I, N: N)
            return
        }
        residualBranch(down, inp: s.mlpAct.pointer, residual: mid, out: next, mask: s.mlpMask) { $0.mlp(l) }
    }

    /// Back-propagates through the layer whose forward filled `s` from input `x`. On entry `dResidual`
    /// is ∂L/∂(layer output); on return ∂L/∂x. `a` lends the gradient scratch. With `dropped`, the
    /// branches go through the masks in `s`; with `dGates` ([B, L, H] rows), the head-gate gradient is added.
    func backward(_ m: Transformer, x: ConstFloatPointer, s: LayerActivations, a: ActivationBuffers,
                  dResidual: FloatPointer, attention: Attention, dropped: Bool, dGates: FloatPointer?) {
        let c = m.config, l = index
        let (N, C, I) = (a.N, c.hiddenSize, c.intermediateSize)
        let dNorm = a.dNorm!.pointer, dQKV = a.dQKV!.pointer, dAttnOut = a.dAttnOut!.pointer
        let dPre = a.dMLPPre!.pointer, dAct = a.dMLPAct!.pointer
        /// ∂L/∂(branch before dropout) = ∂L/∂residual ⊙ mask, in the backward branch buffer.
        func throughMask(_ mask: Buffer?) -> FloatPointer {
            guard dropped, let mask, let out = a.dBranch?.pointer else { return dResidual }
            Dropout.backward(out: out, dout: dResidual, mask: mask.pointer, count: N * C)
            return out
        }

        // MLP: down, activation, gate|up, norm2. dResidual is ∂L/∂(residual after the layer) and becomes
        // ∂L/∂(residual after attention) by accumulation.
        let dDown = throughMask(s.mlpMask)
        dAct.update(repeating: 0, count: N * I)
        down.backward(m, dinp: dAct, dout: dDown, inp: s.mlpAct.pointer, N: N)
        m.timed(.activation) {
            dPre.update(repeating: 0, count: N * gateUp.outFeatures)
            if c.gatedMLP {
                SwiGLU.backward(dgateUp: dPre, gateUp: s.mlpPre.pointer, dout: dAct, N: N, I: I)
            } else {
                GELU.backward(dinp: dPre, inp: s.mlpPre.pointer, dout: dAct, count: N * I)
            }
        }
        dNorm.update(repeating: 0, count: N * C)
        gateUp.backward(m, dinp: dNorm, dout: dPre, inp: s.norm2.pointer, N: N)
        m.timed(.norm) {
            m.normBackward(dinp: dResidual, dout: dNorm, inp: s.mid.pointer, mean: s.norm2Mean.pointer,
                           rstd: s.norm2Rstd.pointer, weight: .layer(l, .norm2Weight), bias: .layer(l, .norm2Bias), N: N)
        }

        // Attention: o, attention, rotary, q|k|v, norm1.
        let dO = throughMask(s.attentionMask)
        dAttnOut.update(repeating: 0, count: N * c.queryWidth)
        o.backward(m, dinp: dAttnOut, dout: dO, inp: s.attnOut.pointer, N: N)
        m.timed(.attention) {
            dQKV.update(repeating: 0, count: N * c.qkvWidth)
            m.withGates(layer: l) {
                attention.backward(dqkv: dQKV, dout: dAttnOut, qkv: s.qkv.pointer, out: s.attnOut.pointer, lse: s.lse.pointer,
                                   scratch: a.attentionScratch(count: attention.scratchCount), gates: $0,
                                   dgates: dGates.map { $0 + l * c.headCount }, gateStride: c.layerCount * c.headCount)
            }
        }
        m.timed(.rotary) {
            m.rotary?.apply(qkv: dQKV, rowStride: c.qkvWidth, queryHeads: c.headCount, kvHeads: c.keyValueHeadCount,
                            kOffset: c.queryWidth, B: attention.B, T: attention.T, inverse: true)
        }
        dNorm.update(repeating: 0, count: N * C)
        qkv.backward(m, dinp: dNorm, dout: dQKV, inp: s.norm1.pointer, N: N)
        m.timed(.norm) {
            m.normBackward(dinp: dResidual, dout: dNorm, inp: x, mean: s.norm1Mean.pointer,
                           rstd: s.norm1Rstd.pointer, weight: .layer(l, .norm1Weight), bias: .layer(l, .norm1Bias), N: N)
        }
    }
}
