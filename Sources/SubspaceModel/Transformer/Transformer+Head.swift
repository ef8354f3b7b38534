import SubspaceCore

/// The output head (final norm's rows · Wᵀ, W the output head or the tied token embedding) and the
/// cross-entropy, run `ActivationBuffers.headRows` rows at a time in forward and backward, with and
/// without checkpointing alike (so the sums, and the gradients, are the same bit for bit). Backward
/// writes each chunk's ∂L/∂logits in place of its logits (llm.c does the same) and consumes it at once:
/// ∂L/∂(final norm) and the head's weight gradient. Under checkpointing a forward with targets keeps no
/// logits: backward recomputes each chunk, so [B·T, V] is never held whole.
extension Transformer {
    var headWeight: TensorRole { config.tiedEmbeddings ? .tokenEmbedding : .outputHead }

    /// Logits (and with targets the loss sum over counted positions, each position's loss kept in
    /// `positionLosses`). Returns nil without targets.
    func headForward(_ a: ActivationBuffers, withTargets: Bool) -> Double? {
        let (N, C, V) = (a.N, config.hiddenSize, config.vocabularySize)
        let keep = a.checkpointing == .none || !withTargets
        let weight = w(headWeight)
        var total = 0.0
        a.logitsValid = false
        for r0 in stride(from: 0, to: N, by: a.headRows) {
            let R = min(a.headRows, N - r0)
            let out = keep ? a.allLogits(vocabulary: V).pointer + r0 * V : a.chunkLogits(vocabulary: V).pointer
            timed(.logits) {
                Linear.forward(out: out, ldOut: V, inp: a.finalNorm.pointer + r0 * C, ldIn: C, weight: weight, bias: nil,
                               N: R, IC: C, OC: V)
            }
            guard withTargets else { continue }
            total += timed(.loss) {
                a.targets.withUnsafeBufferPointer { targets in
                    a.positionLosses.withUnsafeMutableBufferPointer { losses in
                        CrossEntropy.forward(logits: out, targets: targets.baseAddress! + r0, N: R, V: V,
                                             losses: losses.baseAddress! + r0)
                    }
                }
            }
        }
        a.logitsValid = keep
        return withTargets ? total : nil
    }

    /// dNorm += ∂L/∂(final norm output) for L = scale · Σ position losses; the head's weight gradient
    /// accumulates when it trains. The kept logits become their gradient (they are no longer valid after).
    func headBackward(_ a: ActivationBuffers, scale: Float, dNorm: FloatPointer) {
        let (N, C, V) = (a.N, config.hiddenSize, config.vocabularySize)
        let kept = a.logitsValid ? a.logits : nil
        let weight = w(headWeight), dweight = g(headWeight)
        for r0 in stride(from: 0, to: N, by: a.headRows) {
            let R = min(a.headRows, N - r0)
            let chunk: FloatPointer
            if let kept {
                chunk = kept.pointer + r0 * V
            } else {
                chunk = a.chunkLogits(vocabulary: V).pointer
                timed(.logits) {
                    Linear.forward(out: chunk, ldOut: V, inp: a.finalNorm.pointer + r0 * C, ldIn: C, weight: weight, bias: nil,
                                   N: R, IC: C, OC: V)
                }
            }
            timed(.loss) {
                _ = a.targets.withUnsafeBufferPointer {
                    CrossEntropy.forward(logits: chunk, targets: $0.baseAddress! + r0, N: R, V: V, dlogits: chunk, gradientScale: scale)
                }
            }
            timed(.logits) {
                Linear.backward(dinp: dNorm + r0 * C, ldDinp: C, dweight: dweight, dbias: nil, dout: chunk, ldDout: V,
                                inp: a.finalNorm.pointer + r0 * C, ldIn: C, weight: weight, N: R, IC: C, OC: V)
            }
        }
        a.logitsValid = false
    }
}
