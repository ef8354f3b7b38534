import Foundation
import SubspaceCore

extension Transformer {
    /// Whether any base tensor is trainable (LoRA training freezes them all and needs no base gradients).
    public var trainsBaseWeights: Bool { layout.entries.contains { !frozen.contains($0.role) } }

    /// Makes sure the gradient buffer exists (zeroed).
    public func allocateGradients() {
        if gradientStorage == nil { gradientStorage = TensorStorage(capacity: layout.totalCount) }
    }

    /// Back-propagates the last forward pass's loss, accumulating into `gradients` (and the adapters').
    /// The loss is `gradientScale · Σ` of the per-position cross-entropies; by default 1/valid positions,
    /// the mean. Data-parallel training passes 1/(valid positions in the global batch).
    public func backward(gradientScale: Float? = nil) {
        guard let a = buffers, lastLoss != nil else { preconditionFailure("backward() needs a forward pass with targets") }
        if trainsBaseWeights && residency == nil { allocateGradients() }
        let c = config
        let (B, T, N, C, S, I, V) = (a.B, a.T, a.N, c.hiddenSize, c.qkvWidth, c.intermediateSize, c.vocabularySize)
        let attention = Attention(B: B, T: T, H: c.headCount, G: c.keyValueHeadCount, D: c.headDimension)
        a.allocateGradientScratch(config: c)
        let dResidual = a.dResidual!.pointer, dNorm = a.dNorm!.pointer, dQKV = a.dQKV!.pointer
        let dAttnOut = a.dAttnOut!.pointer, dPre = a.dMLPPre!.pointer, dAct = a.dMLPAct!.pointer
        let dLogits = a.dLogits!.pointer
        let dGates = prepareGateGradients(B: B)
        let scale = gradientScale ?? (lastValidCount > 0 ? 1 / Float(lastValidCount) : 0)
        let dropped = lastForwardDropped
        /// ∂L/∂(branch before dropout) = ∂L/∂residual ⊙ mask, in the backward branch buffer.
        func throughMask(_ mask: Buffer?) -> FloatPointer {
            guard dropped, let mask, let out = a.dBranch?.pointer else { return dResidual }
            for i in 0..<(N * C) { out[i] = dResidual[i] * mask.pointer[i] }
            return out
        }

        profiler?.inBackward = true
        defer { profiler?.inBackward = false }
        let L = c.layerCount
        acquire(0, .backward)
        acquire(L + 1, .backward)
        // Loss → logits → final norm.
        timed(.loss) {
            _ = a.targets.withUnsafeBufferPointer {
                CrossEntropy.forward(logits: a.logits.pointer, targets: $0.baseAddress!, N: N, V: V,
                                     dlogits: dLogits, gradientScale: scale)
            }
        }
        let head: TensorRole = c.tiedEmbeddings ? .tokenEmbedding : .outputHead
        timed(.logits) {
            dNorm.update(repeating: 0, count: N * C)
            Linear.backward(dinp: dNorm, ldDinp: C, dweight: g(head), dbias: nil, dout: dLogits, ldDout: V,
                            inp: a.finalNorm.pointer, ldIn: C, weight: p(head), N: N, IC: C, OC: V)
        }
        timed(.norm) {
            dResidual.update(repeating: 0, count: N * C)
            normBackward(dinp: dResidual, dout: dNorm, inp: a.residual[c.layerCount].pointer, mean: a.finalMean.pointer,
                         rstd: a.finalRstd.pointer, weight: .finalNormWeight, bias: .finalNormBias, N: N)
        }
        release(L + 1, .backward)

        for l in stride(from: c.layerCount - 1, through: 0, by: -1) {
            acquire(l + 1, .backward)
            defer { release(l + 1, .backward) }
            // MLP: down, activation, gate|up, norm2. dResidual is ∂L/∂(residual after the layer) and
            // becomes ∂L/∂(residual after attention) by accumulation.
            let preWidth = c.gatedMLP ? 2 * I : I
            let dDown = throughMask(dropped ? a.mlpMask[l] : nil)
            timed(.matmul) {
                dAct.update(repeating: 0, count: N * I)
                Linear.backward(dinp: dAct, ldDinp: I, dweight: g(.layer(l, .down)), dbias: g(.layer(l, .downBias)),
                                dout: dDown, ldDout: C, inp: a.mlpAct[l].pointer, ldIn: I, weight: p(.layer(l, .down)),
                                N: N, IC: I, OC: C)
            }
            timed(.lora) {
                adapters?.backward(layer: l, group: .down, dout: dDown, ldDout: C, inp: a.mlpAct[l].pointer, ldIn: I,
                                   dinp: dAct, ldDinp: I, N: N)
            }
            timed(.activation) {
                dPre.update(repeating: 0, count: N * preWidth)
                if c.gatedMLP {
                    SwiGLU.backward(dgateUp: dPre, gateUp: a.mlpPre[l].pointer, dout: dAct, N: N, I: I)
                } else {
                    GELU.backward(dinp: dPre, inp: a.mlpPre[l].pointer, dout: dAct, count: N * I)
                }
            }
            timed(.matmul) {
                dNorm.update(repeating: 0, count: N * C)
                fusedBackward(parts: c.gatedMLP ? [(.layer(l, .gate), nil, I), (.layer(l, .up), nil, I)]
                                                : [(.layer(l, .up), .layer(l, .upBias), I)],
                              dinp: dNorm, dout: dPre, ldDout: preWidth, inp: a.norm2[l].pointer, N: N, IC: C)
            }
            timed(.lora) {
                adapters?.backward(layer: l, group: .gateUp, dout: dPre, ldDout: preWidth, inp: a.norm2[l].pointer, ldIn: C,
                                   dinp: dNorm, ldDinp: C, N: N)
            }
            timed(.norm) {
                normBackward(dinp: dResidual, dout: dNorm, inp: a.residualMid[l].pointer, mean: a.norm2Mean[l].pointer,
                             rstd: a.norm2Rstd[l].pointer, weight: .layer(l, .norm2Weight), bias: .layer(l, .norm2Bias), N: N)
            }

            // Attention: o, attention, rotary, q|k|v, norm1.
            let dO = throughMask(dropped ? a.attentionMask[l] : nil)
            timed(.matmul) {
                dAttnOut.update(repeating: 0, count: N * c.queryWidth)
                Linear.backward(dinp: dAttnOut, ldDinp: c.queryWidth, dweight: g(.layer(l, .o)), dbias: g(.layer(l, .oBias)),
                                dout: dO, ldDout: C, inp: a.attnOut[l].pointer, ldIn: c.queryWidth,
                                weight: p(.layer(l, .o)), N: N, IC: c.queryWidth, OC: C)
            }
            timed(.lora) {
                adapters?.backward(layer: l, group: .o, dout: dO, ldDout: C, inp: a.attnOut[l].pointer,
                                   ldIn: c.queryWidth, dinp: dAttnOut, ldDinp: c.queryWidth, N: N)
            }
            timed(.attention) {
                dQKV.update(repeating: 0, count: N * S)
                withGates(layer: l) {
                    attention.backward(dqkv: dQKV, dout: dAttnOut, qkv: a.qkv[l].pointer, out: a.attnOut[l].pointer,
                                       lse: a.lse[l].pointer, scratch: a.attentionScratch(count: attention.scratchCount), gates: $0,
                                       dgates: dGates.map { $0 + l * c.headCount }, gateStride: L * c.headCount)
                }
            }
            timed(.rotary) {
                rotary?.apply(qkv: dQKV, rowStride: S, queryHeads: c.headCount, kvHeads: c.keyValueHeadCount,
                              kOffset: c.queryWidth, B: B, T: T, inverse: true)
            }
            timed(.matmul) {
                dNorm.update(repeating: 0, count: N * C)
                fusedBackward(parts: [(.layer(l, .q), .layer(l, .qBias), c.queryWidth),
                                      (.layer(l, .k), .layer(l, .kBias), c.keyValueWidth),
                                      (.layer(l, .v), .layer(l, .vBias), c.keyValueWidth)],
                              dinp: dNorm, dout: dQKV, ldDout: S, inp: a.norm1[l].pointer, N: N, IC: C)
            }
            timed(.lora) {
                adapters?.backward(layer: l, group: .qkv, dout: dQKV, ldDout: S, inp: a.norm1[l].pointer, ldIn: C,
                                   dinp: dNorm, ldDinp: C, N: N)
            }
            timed(.norm) {
                normBackward(dinp: dResidual, dout: dNorm, inp: a.residual[l].pointer, mean: a.norm1Mean[l].pointer,
                             rstd: a.norm1Rstd[l].pointer, weight: .layer(l, .norm1Weight), bias: .layer(l, .norm1Bias), N: N)
            }
        }
        let dEmbedding = throughMask(dropped ? a.embeddingMask : nil)
        timed(.embedding) {
            a.ids.withUnsafeBufferPointer { ids in
                Embedding.backward(dwte: g(.tokenEmbedding), dwpe: g(.positionEmbedding), dout: dEmbedding,
                                   ids: ids.baseAddress!, B: B, T: T, C: C)
            }
        }
        release(0, .backward)
    }

    /// Backward of a fused linear group (q|k|v or gate|up): parts are stacked [out, in] matrices whose
    /// outputs are consecutive column blocks of `dout`. The input gradient is one GEMM over the whole
    /// stack; weight gradients are one GEMM when every part trains, else one per trainable part.
    func fusedBackward(parts: [(weight: TensorRole, bias: TensorRole?, rows: Int)], dinp: FloatPointer,
                       dout: FloatPointer, ldDout: Int, inp: FloatPointer, N: Int, IC: Int) {
        let total = parts.reduce(0) { $0 + $1.rows }
        Linear.backward(dinp: dinp, ldDinp: IC, dweight: nil, dbias: nil, dout: dout, ldDout: ldDout, inp: inp, ldIn: IC,
                        weight: p(parts[0].weight), N: N, IC: IC, OC: total)
        let allTrain = parts.allSatisfy { g($0.weight) != nil }
        if allTrain && parts.count > 1 {
            Linear.backward(dinp: nil, ldDinp: IC, dweight: g(parts[0].weight), dbias: nil, dout: dout, ldDout: ldDout,
                            inp: inp, ldIn: IC, weight: p(parts[0].weight), N: N, IC: IC, OC: total)
        }
        var column = 0
        for part in parts {
            let dweight = allTrain && parts.count > 1 ? nil : g(part.weight)
            let dbias = part.bias.flatMap { g($0) }
            if dweight != nil || dbias != nil {
                Linear.backward(dinp: nil, ldDinp: IC, dweight: dweight, dbias: dbias, dout: dout + column, ldDout: ldDout,
                                inp: inp, ldIn: IC, weight: p(part.weight), N: N, IC: IC, OC: part.rows)
            }
            column += part.rows
        }
    }
}
