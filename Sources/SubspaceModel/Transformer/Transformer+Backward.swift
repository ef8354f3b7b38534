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
    /// the mean. Data-parallel training passes 1/(valid positions in the global batch). Under activation
    /// checkpointing each layer is recomputed from its kept input just before its backward.
    public func backward(gradientScale: Float? = nil) {
        guard let a = buffers, lastLoss != nil else { preconditionFailure("backward() needs a forward pass with targets") }
        if trainsBaseWeights && residency == nil { allocateGradients() }
        let c = config
        let (B, T, N, C, L) = (a.B, a.T, a.N, c.hiddenSize, c.layerCount)
        let attention = Attention(B: B, T: T, H: c.headCount, G: c.keyValueHeadCount, D: c.headDimension)
        a.allocateGradientScratch(config: c)
        let dResidual = a.dResidual!.pointer, dNorm = a.dNorm!.pointer
        let dGates = prepareGateGradients(B: B)
        let scale = gradientScale ?? (lastValidCount > 0 ? 1 / Float(lastValidCount) : 0)
        let dropped = lastForwardDropped
        let recomputeDropout = dropped ? LayerDropout(pass: a.dropoutPass!, probability: dropout, branch: a.branch!.pointer) : nil

        profiler?.inBackward = true
        defer { profiler?.inBackward = false }
        // Loss → logits → final norm.
        dNorm.update(repeating: 0, count: N * C)
        headBackward(a, scale: scale, dNorm: dNorm)
        acquire(layout.finalNormBlock, .backward)
        timed(.norm) {
            dResidual.update(repeating: 0, count: N * C)
            normBackward(dinp: dResidual, dout: dNorm, inp: a.residual[L].pointer, mean: a.finalMean.pointer,
                         rstd: a.finalRstd.pointer, weight: .finalNormWeight, bias: .finalNormBias, N: N)
        }
        release(layout.finalNormBlock, .backward)

        for l in stride(from: L - 1, through: 0, by: -1) {
            acquire(layout.layerBlock(l), .backward)
            defer { release(layout.layerBlock(l), .backward) }
            if a.checkpointing == .layers {
                // The same forward, from the kept input, with the same dropout masks, up to what backward reads.
                layers[l].forward(self, x: a.residual[l].pointer, next: a.residual[l + 1].pointer, s: a.layer(l),
                                  attention: .causal(attention, scratch: a.attentionScratch(count: attention.scratchCount)),
                                  B: B, T: T, dropout: recomputeDropout, recompute: true)
            }
            layers[l].backward(self, x: a.residual[l].pointer, s: a.layer(l), a: a, dResidual: dResidual,
                               attention: attention, dropped: dropped, dGates: dGates)
        }
        var dEmbedding = dResidual
        if dropped, let mask = a.embeddingMask, let out = a.dBranch {
            Dropout.backward(out: out.pointer, dout: dResidual, mask: mask.pointer, count: N * C)
            dEmbedding = out.pointer
        }
        embeddingBackward(a, dEmbedding: dEmbedding, scale: scale)
    }
}
