import Foundation
import SubspaceCore

/// Causal multi-head attention with grouped key/value heads, tiled so that no [T, T] matrix is ever held
/// (FlashAttention-2's scheme, on CPU tiles through BLAS).
///
/// Legend: B batch, T sequence, H query heads, G key/value heads (H divisible by G; query head h reads
/// key/value head h / (H/G), as HF's `repeat_kv`), D head dimension, S = (H + 2G)·D the row stride of the
/// fused qkv activation (q at column 0, k at H·D, v at (H+G)·D). Br query rows × Bc keys per tile.
///
/// Forward walks, per (batch, head) and block of Br query rows, the key blocks up to the causal diagonal
/// (blocks above it are never computed) with the online softmax: a running row max m and sum ℓ, the
/// output rescaled when m grows. It keeps only the rows' logsumexp m + log ℓ ([B, H, T]) for backward.
/// Backward recomputes each tile's probabilities P = exp(QKᵀ/√D − lse) and, with Dᵢ = rowsum(dO ⊙ O),
/// forms dS = P ⊙ (dP − D) without ever holding a row of P whole.
///
/// Head gates (optional): ξ [H] multiplies each head's output, O_h = ξ_h · P_h V_h, which is the same as
/// HF's `head_mask` on the probabilities and as scaling the output projection's input columns of head h.
/// Without gates nothing extra is done.
///
/// Memory: the logsumexp rows plus `scratchCount` floats of per-worker tiles (2·Br·Bc + 2·Br each).
public struct Attention: Sendable {
    public let B: Int, T: Int, H: Int, G: Int, D: Int
    /// Query rows (Br) and keys (Bc) per tile, at most T.
    public let queryTile: Int, keyTile: Int
    /// Workers the kernels split over: `Parallel.workers` when this value was made (it sizes the scratch).
    public let workers: Int
    public var S: Int { (H + 2 * G) * D }
    var scale: Float { 1 / Float(D).squareRoot() }

    /// Default tiles: 64 query rows × 256 keys. Br sets the work wasted on the diagonal (Br²/2 scores
    /// per block row) and Bc the tile's footprint (2·64·256 floats = 128 KB per worker, within L2); the
    /// products stay large enough for sgemm's kernels. Measured against 32–128 × 64–512 at T = 256
    /// (D = 32) and T = 1024 (D = 64): the best or within noise of it at both.
    /// `keyLength`: the most keys a row sees (default T; a KV cache's capacity for the cached forward).
    public init(B: Int, T: Int, H: Int, G: Int, D: Int, queryTile: Int = 64, keyTile: Int = 256, keyLength: Int? = nil) {
        precondition(H % G == 0, "query heads \(H) not divisible by key/value heads \(G)")
        precondition(queryTile > 0 && keyTile > 0, "tiles must be positive")
        (self.B, self.T, self.H, self.G, self.D) = (B, T, H, G, D)
        self.queryTile = Swift.max(1, Swift.min(queryTile, T))
        self.keyTile = Swift.max(1, Swift.min(keyTile, keyLength ?? T))
        workers = Swift.max(1, Parallel.workers)
    }

    /// Floats one worker's tiles take: probabilities and their gradient (Br × Bc each), two row vectors.
    var perWorker: Int { 2 * queryTile * keyTile + 2 * queryTile }

    /// Floats of scratch `forward` and `backward` need (per-worker tiles).
    public var scratchCount: Int { workers * perWorker }

    /// - out: [B·T, H·D]; lse: [B, H, T] each query row's logsumexp of its scaled scores, kept for
    ///   backward; qkv: [B·T, S]; scratch: `scratchCount` floats; gates: [H] or nil (all 1).
    public func forward(out: FloatPointer, lse: FloatPointer, qkv: ConstFloatPointer, scratch: FloatPointer,
                        gates: ConstFloatPointer? = nil) {
        let (T, H, G, D, S) = (T, H, G, D, S)
        let group = H / G, perWorker = perWorker
        Parallel.chunks(B * H, chunks: workers) { worker, pairs in
            for bh in pairs {
                let b = bh / H, h = bh % H, g = h / group
                let base = qkv + b * T * S
                forwardHead(out: out + b * T * H * D + h * D, ldo: H * D, lse: lse + bh * T,
                            q: base + h * D, ldq: S, k: base + H * D + g * D, ldk: S, v: base + (H + G) * D + g * D, ldv: S,
                            position: 0, gate: gates?[h] ?? 1, tile: scratch + worker * perWorker)
            }
        }
    }

    /// The T rows of one sequence at positions `position ..< position + T` against keys and values held
    /// apart, a KV cache that already holds positions 0 ..< position + T: keys and values [G, ·, D] with
    /// head g's rows from `keys + g·headStride` (row stride D). Row i sees positions 0 … position + i.
    /// qkv: [T, S] (only its query columns are read); out: [T, H·D]. Make the value with B = 1 and
    /// `keyLength` the cache's capacity so the key tiles are not clipped to T.
    public func forward(out: FloatPointer, qkv: ConstFloatPointer, keys: ConstFloatPointer, values: ConstFloatPointer,
                        headStride: Int, position p0: Int, scratch: FloatPointer, gates: ConstFloatPointer? = nil) {
        precondition(B == 1, "cached attention runs one sequence")
        let (H, G, D, S) = (H, G, D, S)
        let group = H / G, perWorker = perWorker
        Parallel.chunks(H, chunks: workers) { worker, heads in
            for h in heads {
                let g = h / group
                forwardHead(out: out + h * D, ldo: H * D, lse: nil, q: qkv + h * D, ldq: S,
                            k: keys + g * headStride, ldk: D, v: values + g * headStride, ldv: D,
                            position: p0, gate: gates?[h] ?? 1, tile: scratch + worker * perWorker)
            }
        }
    }

    /// One head: T query rows (q [T, ldq]) at positions p0 ..< p0 + T against keys and values
    /// 0 ..< p0 + T (k [·, ldk], v [·, ldv]); out [T, ldo] ← gate · softmax(q kᵀ/√D) v, lse [T] (or
    /// nothing) the rows' logsumexp. `tile`: one worker's `perWorker` floats.
    func forwardHead(out o: FloatPointer, ldo: Int, lse: FloatPointer?, q: ConstFloatPointer, ldq: Int,
                     k: ConstFloatPointer, ldk: Int, v: ConstFloatPointer, ldv: Int, position p0: Int,
                     gate: Float, tile: FloatPointer) {
        let (T, D, Br, Bc, scale) = (T, D, queryTile, keyTile, scale)
        let scores = tile, rowMax = tile + 2 * Br * Bc, rowSum = rowMax + Br
        for r0 in stride(from: 0, to: T, by: Br) {
            let rows = Swift.min(Br, T - r0), r1 = r0 + rows
            // Key blocks up to the diagonal only: query r0 + i sees keys 0 ... p0 + r0 + i.
            for c0 in stride(from: 0, to: p0 + r1, by: Bc) {
                let cols = Swift.min(Bc, p0 + r1 - c0)
                BLAS.gemm(.none, .transposed, m: rows, n: cols, k: D, alpha: scale, a: q + r0 * ldq, lda: ldq,
                          b: k + c0 * ldk, ldb: ldk, beta: 0, c: scores, ldc: cols)
                for i in 0..<rows {
                    let row = scores + i * cols
                    let visible = Swift.min(cols, p0 + r0 + i + 1 - c0)
                    guard visible > 0 else { row.update(repeating: 0, count: cols); continue }
                    let previous = c0 == 0 ? -Float.infinity : rowMax[i]
                    let m = Swift.max(previous, TileMath.max(row, visible))
                    TileMath.expShifted(row, visible, by: m)
                    (row + visible).update(repeating: 0, count: cols - visible)
                    let sum = TileMath.sum(row, visible)
                    if c0 == 0 {
                        rowSum[i] = sum
                    } else {
                        // The row's earlier output was weighted by e^{−previous}: bring it to e^{−m}.
                        let correction = FastMath.exp(previous - m)
                        rowSum[i] = rowSum[i] * correction + sum
                        if correction != 1 { TileMath.scale(o + (r0 + i) * ldo, D, by: correction) }
                    }
                    rowMax[i] = m
                }
                BLAS.gemm(.none, .none, m: rows, n: D, k: cols, a: scores, lda: cols, b: v + c0 * ldv, ldb: ldv,
                          beta: c0 == 0 ? 0 : 1, c: o + r0 * ldo, ldc: ldo)
            }
            for i in 0..<rows {
                TileMath.scale(o + (r0 + i) * ldo, D, by: gate / rowSum[i])
                if let lse { lse[r0 + i] = rowMax[i] + Foundation.log(rowSum[i]) }
            }
        }
    }

    /// dqkv += ∂L/∂qkv given dout [B·T, H·D], the forward's out and lse. Work is split by (batch,
    /// key/value head) so the query heads that share a key/value head accumulate into it without races.
    /// With `gates` ([H], the forward's), the gradient goes through ξ_h; with `dgates`, ∂L/∂ξ_h of batch
    /// row b is added at dgates[b·gateStride + h]: Σ dO_h ⊙ (P_h V_h) = Σ_ij P_ij (dO_h V_hᵀ)_ij, summed
    /// tile by tile (so it is exact at ξ_h = 0 too, where O holds nothing to divide by ξ).
    public func backward(dqkv: FloatPointer, dout: ConstFloatPointer, qkv: ConstFloatPointer,
                         out: ConstFloatPointer, lse: ConstFloatPointer, scratch: FloatPointer,
                         gates: ConstFloatPointer? = nil, dgates: FloatPointer? = nil, gateStride: Int = 0) {
        let (T, H, G, D, S, Br, Bc) = (T, H, G, D, S, queryTile, keyTile)
        let group = H / G, ldo = H * D, scale = scale, perWorker = perWorker
        Parallel.chunks(B * G, chunks: workers) { worker, range in
            let p = scratch + worker * perWorker, dp = p + Br * Bc, rowD = dp + Br * Bc
            for bg in range {
                let b = bg / G, g = bg % G
                let base = qkv + b * T * S, dbase = dqkv + b * T * S
                let k = base + H * D + g * D, v = base + (H + G) * D + g * D
                let dk = dbase + H * D + g * D, dv = dbase + (H + G) * D + g * D
                for h in (g * group)..<((g + 1) * group) {
                    let q = base + h * D, dq = dbase + h * D
                    let dO = dout + b * T * ldo + h * D, o = out + b * T * ldo + h * D
                    let rowLse = lse + (b * H + h) * T
                    let gate = gates?[h] ?? 1
                    var gateGradient: Float = 0
                    for r0 in stride(from: 0, to: T, by: Br) {
                        let rows = Swift.min(Br, T - r0), r1 = r0 + rows
                        // Dᵢ = dOᵢ · Oᵢ = ξ Σⱼ Pᵢⱼ (dO Vᵀ)ᵢⱼ: the softmax backward's row sums, gate included.
                        for i in 0..<rows { rowD[i] = TileMath.dot(dO + (r0 + i) * ldo, o + (r0 + i) * ldo, D) }
                        for c0 in stride(from: 0, to: r1, by: Bc) {
                            let cols = Swift.min(Bc, r1 - c0)
                            // P = exp(QKᵀ/√D − lse) ; dP = dO Vᵀ (ξ applied below)
                            BLAS.gemm(.none, .transposed, m: rows, n: cols, k: D, alpha: scale, a: q + r0 * S, lda: S,
                                      b: k + c0 * S, ldb: S, beta: 0, c: p, ldc: cols)
                            BLAS.gemm(.none, .transposed, m: rows, n: cols, k: D, a: dO + r0 * ldo, lda: ldo,
                                      b: v + c0 * S, ldb: S, beta: 0, c: dp, ldc: cols)
                            for i in 0..<rows {
                                let pr = p + i * cols, dr = dp + i * cols
                                let visible = Swift.min(cols, r0 + i + 1 - c0)
                                guard visible > 0 else {
                                    pr.update(repeating: 0, count: cols)
                                    dr.update(repeating: 0, count: cols)
                                    continue
                                }
                                TileMath.expShifted(pr, visible, by: rowLse[r0 + i])
                                if dgates != nil { gateGradient += TileMath.dot(pr, dr, visible) }
                                // dS = P ⊙ (ξ dP − D), then the score scale.
                                TileMath.softmaxBackward(dr, pr, visible, gate: gate, rowSum: rowD[i], scale: scale)
                                (pr + visible).update(repeating: 0, count: cols - visible)
                                (dr + visible).update(repeating: 0, count: cols - visible)
                            }
                            // dV += ξ Pᵀ dO ; dQ += dS K ; dK += dSᵀ Q
                            BLAS.gemm(.transposed, .none, m: cols, n: D, k: rows, alpha: gate, a: p, lda: cols,
                                      b: dO + r0 * ldo, ldb: ldo, beta: 1, c: dv + c0 * S, ldc: S)
                            BLAS.gemm(.none, .none, m: rows, n: D, k: cols, a: dp, lda: cols, b: k + c0 * S, ldb: S,
                                      beta: 1, c: dq + r0 * S, ldc: S)
                            BLAS.gemm(.transposed, .none, m: cols, n: D, k: rows, a: dp, lda: cols, b: q + r0 * S, ldb: S,
                                      beta: 1, c: dk + c0 * S, ldc: S)
                        }
                    }
                    if let dgates { dgates[b * gateStride + h] += gateGradient }
                }
            }
        }
    }
}
