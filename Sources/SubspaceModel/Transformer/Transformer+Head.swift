import SubspaceCore

/// The output head (final norm's rows · Wᵀ, W the output head or the tied token embedding) and the
/// cross-entropy, a vocabulary slice at a time (the layout's `vocabularyRows`, each slice one block, so
/// under ZeRO-3 no more than one slice of W is gathered at once) and within a slice
/// `ActivationBuffers.headRows` rows at a time, with and without checkpointing alike (so the sums, and
/// the gradients, are the same bit for bit). The loss is an online softmax over the slices (each row's
/// running max and Σ exp; `CrossEntropy.accumulate`), so [B·T, V] need not be held: with checkpointing a
/// forward with targets keeps one tile and backward recomputes each tile (from the forward's per-row
/// log Σ exp); without it the logits are kept whole (slice by slice) and backward writes each tile's
/// ∂L/∂logits in place of its logits (llm.c does the same).
///
/// Backward visits the slices twice: first (before the final norm) ∂(final norm) += ∂logits · W_s for
/// every slice — an untied head's weight gradient ∂W_s = ∂logitsᵀ · X is made in the same visit and the
/// slice is finished; then at the very end (`embeddingBackward`) each token-embedding slice gets, for a
/// tied head, ∂W_s from the same ∂logits (kept, or recomputed) and then its tokens' rows, so every slice
/// is finished once, with its gradient complete.
extension Transformer {
    var headWeight: TensorRole { config.tiedEmbeddings ? .tokenEmbedding : .outputHead }

    /// Where tile (slice `s`, rows r0..<r0+R) of the logits is: in the kept logits, or the one-tile buffer.
    func headTile(_ a: ActivationBuffers, kept: Bool, slice s: Int, r0: Int) -> FloatPointer {
        let columns = layout.vocabularyRows[s]
        return kept ? a.allLogits(vocabulary: config.vocabularySize).pointer + a.N * columns.lowerBound + r0 * columns.count
                    : a.chunkLogits(sliceWidth: layout.vocabularyRows.map(\.count).max()!).pointer
    }

    /// Logits of tile (slice `s`, rows r0..<r0+R) into `out` (row stride V_s); the slice is in use.
    func tileLogits(_ a: ActivationBuffers, out: FloatPointer, slice s: Int, r0: Int, R: Int) {
        let C = config.hiddenSize, Vs = layout.vocabularyRows[s].count
        timed(.logits) {
            Linear.forward(out: out, ldOut: Vs, inp: a.finalNorm.pointer + r0 * C, ldIn: C, weight: sliceW(headWeight, s), bias: nil,
                           N: R, IC: C, OC: Vs)
        }
    }

    /// ∂L/∂logits of a tile, in place of its logits (recomputed first when they were not kept).
    func tileGradient(_ a: ActivationBuffers, kept: Bool, slice s: Int, r0: Int, R: Int, scale: Float) -> FloatPointer {
        let tile = headTile(a, kept: kept, slice: s, r0: r0)
        if !kept { tileLogits(a, out: tile, slice: s, r0: r0, R: R) }
        let columns = layout.vocabularyRows[s]
        timed(.loss) {
            a.targets.withUnsafeBufferPointer {
                CrossEntropy.sliceGradient(logits: tile, dlogits: tile, ld: columns.count, columns: columns, targets: $0.baseAddress! + r0,
                                           logSumExp: a.logSumExp.pointer + r0, N: R, gradientScale: scale)
            }
        }
        return tile
    }

    /// Logits (and with targets the loss sum over counted positions, each position's loss kept in
    /// `positionLosses`). Returns nil without targets.
    func headForward(_ a: ActivationBuffers, withTargets: Bool) -> Double? {
        let (N, V) = (a.N, config.vocabularySize)
        let keep = a.checkpointing == .none || !withTargets
        a.logitsValid = false
        if withTargets { CrossEntropy.beginSlices(rowMax: a.rowMax.pointer, rowSum: a.rowSum.pointer, N: N) }
        for (s, columns) in layout.vocabularyRows.enumerated() {
            let b = layout.sliceBlocks(of: headWeight).lowerBound + s
            acquire(b, .forward)
            for r0 in stride(from: 0, to: N, by: a.headRows) {
                let R = min(a.headRows, N - r0)
                let tile = headTile(a, kept: keep, slice: s, r0: r0)
                tileLogits(a, out: tile, slice: s, r0: r0, R: R)
                guard withTargets else { continue }
                timed(.loss) {
                    a.targets.withUnsafeBufferPointer {
                        CrossEntropy.accumulate(logits: tile, ld: columns.count, columns: columns, targets: $0.baseAddress! + r0, N: R,
                                                rowMax: a.rowMax.pointer + r0, rowSum: a.rowSum.pointer + r0,
                                                targetLogit: a.targetLogit.pointer + r0)
                    }
                }
            }
            release(b, .forward)
        }
        a.logitsValid = keep
        guard withTargets else { return nil }
        return a.targets.withUnsafeBufferPointer { targets in
            a.positionLosses.withUnsafeMutableBufferPointer { losses in
                CrossEntropy.finishSlices(targets: targets.baseAddress!, N: N, V: V, rowMax: a.rowMax.pointer, rowSum: a.rowSum.pointer,
                                          targetLogit: a.targetLogit.pointer, logSumExp: a.logSumExp.pointer, losses: losses.baseAddress!)
            }
        }
    }

    /// dNorm += ∂L/∂(final norm output) for L = scale · Σ position losses, slices last to first; an
    /// untied head's weight gradient accumulates (when it trains) and each of its slices is finished. The
    /// kept logits become their gradient (they are no longer valid after; `embeddingBackward` reads them).
    func headBackward(_ a: ActivationBuffers, scale: Float, dNorm: FloatPointer) {
        let (N, C) = (a.N, config.hiddenSize)
        let kept = a.logitsValid
        let role = headWeight
        let untied = !config.tiedEmbeddings
        let withWeight = untied && needsGradient(role)
        for s in layout.vocabularyRows.indices.reversed() {
            let b = layout.sliceBlocks(of: role).lowerBound + s
            let Vs = layout.vocabularyRows[s].count
            acquire(b, .backward, gradients: withWeight)
            for r0 in stride(from: 0, to: N, by: a.headRows) {
                let R = min(a.headRows, N - r0)
                let tile = tileGradient(a, kept: kept, slice: s, r0: r0, R: R, scale: scale)
                timed(.logits) {
                    Linear.backward(dinp: dNorm + r0 * C, ldDinp: C, dweight: withWeight ? sliceG(role, s) : nil, dbias: nil,
                                    dout: tile, ldDout: Vs, inp: a.finalNorm.pointer + r0 * C, ldIn: C, weight: sliceW(role, s),
                                    N: R, IC: C, OC: Vs)
                }
            }
            release(b, withWeight ? .backward : .forward)
        }
        a.logitsValid = false
        a.headGradientsKept = kept
    }

    /// The end of backward: GPT-2's position embedding gets every position's gradient, then each token
    /// embedding slice, last to first, gets (tied head) ∂W_s = ∂logitsᵀ · X from the ∂logits the head's
    /// backward left (or recomputed) and the rows of its tokens, and is finished. Skipped for tensors that
    /// receive no gradient (frozen, or LoRA training).
    func embeddingBackward(_ a: ActivationBuffers, dEmbedding: ConstFloatPointer, scale: Float) {
        let (B, T, N, C) = (a.B, a.T, a.N, config.hiddenSize)
        if let pb = layout.positionBlock, needsGradient(.positionEmbedding) {
            acquire(pb, .backward)
            timed(.embedding) {
                a.ids.withUnsafeBufferPointer { ids in
                    Embedding.backward(dwte: nil, dwpe: g(.positionEmbedding), dout: dEmbedding, ids: ids.baseAddress!, B: B, T: T, C: C)
                }
            }
            release(pb, .backward)
        }
        guard needsGradient(.tokenEmbedding) else { return }
        let tied = config.tiedEmbeddings
        for s in layout.vocabularyRows.indices.reversed() {
            let b = layout.tokenEmbeddingBlocks.lowerBound + s
            let rows = layout.vocabularyRows[s]
            acquire(b, .backward)
            if tied, let dweight = sliceG(.tokenEmbedding, s) {
                for r0 in stride(from: 0, to: N, by: a.headRows) {
                    let R = min(a.headRows, N - r0)
                    let tile = a.headGradientsKept ? headTile(a, kept: true, slice: s, r0: r0)
                                                   : tileGradient(a, kept: false, slice: s, r0: r0, R: R, scale: scale)
                    timed(.logits) {
                        Linear.backward(dinp: nil, ldDinp: C, dweight: dweight, dbias: nil, dout: tile, ldDout: rows.count,
                                        inp: a.finalNorm.pointer + r0 * C, ldIn: C, weight: sliceW(.tokenEmbedding, s), N: R, IC: C, OC: rows.count)
                    }
                }
            }
            timed(.embedding) {
                a.ids.withUnsafeBufferPointer { ids in
                    Embedding.backward(dwte: sliceG(.tokenEmbedding, s), rows: rows, dwpe: nil, dout: dEmbedding, ids: ids.baseAddress!,
                                       B: B, T: T, C: C)
                }
            }
            release(b, .backward)
        }
    }
}
