import Foundation
import SubspaceCore
@testable import SubspaceModel

/// The reference for the tiled `Attention`: the kernel the model used before it, which keeps the whole
/// [B, H, T, T] probability matrix for backward. Tests only — kept to check the tiled kernel against.
///
/// Causal multi-head attention with grouped key/value heads, through BLAS per (batch, head).
///
/// Legend: B batch, T sequence, H query heads, G key/value heads (H divisible by G; query head h reads
/// key/value head h / (H/G), as HF's `repeat_kv`), D head dimension, S = (H + 2G)·D the row stride of the
/// fused qkv activation (q at column 0, k at H·D, v at (H+G)·D).
///
/// Head gates (optional): ξ [H] multiplies each head's output, O_h = ξ_h · P_h V_h, which is the same as
/// HF's `head_mask` on the probabilities and as scaling the output projection's input columns of head h.
/// Without gates nothing extra is done.
struct ReferenceAttention: Sendable {
    let B: Int, T: Int, H: Int, G: Int, D: Int
    var S: Int { (H + 2 * G) * D }
    var scale: Float { 1 / Float(D).squareRoot() }

    init(B: Int, T: Int, H: Int, G: Int, D: Int) {
        precondition(H % G == 0, "query heads \(H) not divisible by key/value heads \(G)")
        (self.B, self.T, self.H, self.G, self.D) = (B, T, H, G, D)
    }

    /// - out: [B·T, H·D]; att: [B, H, T, T] softmax probabilities, kept for backward (zero above the
    ///   diagonal, ungated); qkv: [B·T, S]; gates: [H] or nil (all 1).
    func forward(out: FloatPointer, att: FloatPointer, qkv: ConstFloatPointer, gates: ConstFloatPointer? = nil) {
        let (T, H, G, D, S) = (T, H, G, D, S)
        let group = H / G
        Parallel.rows(B * H, minimumPerChunk: 1) { pairs in
            for bh in pairs {
                let b = bh / H, h = bh % H, g = h / group
                let q = qkv + b * T * S + h * D
                let k = qkv + b * T * S + H * D + g * D
                let v = qkv + b * T * S + (H + G) * D + g * D
                let p = att + bh * T * T
                // Scores for all pairs; the causal mask is applied in the softmax below.
                BLAS.gemm(.none, .transposed, m: T, n: T, k: D, alpha: scale, a: q, lda: S, b: k, ldb: S,
                          beta: 0, c: p, ldc: T)
                for i in 0..<T {
                    let row = p + i * T
                    var maxScore = -Float.infinity
                    for j in 0...i { maxScore = max(maxScore, row[j]) }
                    var sum: Float = 0
                    for j in 0...i {
                        let e = FastMath.exp(row[j] - maxScore)
                        row[j] = e
                        sum += e
                    }
                    let inv = 1 / sum
                    for j in 0...i { row[j] *= inv }
                    (row + i + 1).update(repeating: 0, count: T - i - 1)
                }
                BLAS.gemm(.none, .none, m: T, n: D, k: T, alpha: gates?[h] ?? 1, a: p, lda: T, b: v, ldb: S,
                          beta: 0, c: out + b * T * H * D + h * D, ldc: H * D)
            }
        }
    }

    /// Floats of scratch `backward` needs.
    var scratchCount: Int { max(1, Parallel.workers) * T * T }

    /// dqkv += ∂L/∂qkv given dout [B·T, H·D]. Work is split by (batch, key/value head) so the query heads
    /// that share a key/value head accumulate into it without races.
    /// With `gates` ([H], the forward's), the gradient goes through ξ_h; with `dgates`, ∂L/∂ξ_h of batch
    /// row b is added at dgates[b·gateStride + h]: Σ dO_h ⊙ (P_h V_h) = Σ_ij P_ij (dO_h V_hᵀ)_ij, which is
    /// the softmax backward's row sums, so it costs T additions per (b, h).
    func backward(dqkv: FloatPointer, dout: ConstFloatPointer, qkv: ConstFloatPointer,
                         att: ConstFloatPointer, scratch: FloatPointer,
                         gates: ConstFloatPointer? = nil, dgates: FloatPointer? = nil, gateStride: Int = 0) {
        let (T, H, G, D, S) = (T, H, G, D, S)
        let group = H / G
        Parallel.chunks(B * G, chunks: Parallel.workers) { c, range in
            let dp = scratch + c * T * T
            for bg in range {
                let b = bg / G, g = bg % G
                let k = qkv + b * T * S + H * D + g * D
                let v = qkv + b * T * S + (H + G) * D + g * D
                let dk = dqkv + b * T * S + H * D + g * D
                let dv = dqkv + b * T * S + (H + G) * D + g * D
                for h in (g * group)..<((g + 1) * group) {
                    let q = qkv + b * T * S + h * D
                    let dq = dqkv + b * T * S + h * D
                    let p = att + (b * H + h) * T * T
                    let dO = dout + b * T * H * D + h * D
                    let gate = gates?[h] ?? 1, scaled = scale * gate
                    // dP = ξ · dO · Vᵀ (ξ applied below) ; dV += ξ · Pᵀ · dO
                    BLAS.gemm(.none, .transposed, m: T, n: T, k: D, a: dO, lda: H * D, b: v, ldb: S,
                              beta: 0, c: dp, ldc: T)
                    BLAS.gemm(.transposed, .none, m: T, n: D, k: T, alpha: gate, a: p, lda: T, b: dO, ldb: H * D,
                              beta: 1, c: dv, ldc: S)
                    // dS = P ⊙ (dP − rowsum(P ⊙ dP)), then the score scale; Σ rowsums = ∂L/∂ξ.
                    var gateGradient: Float = 0
                    for i in 0..<T {
                        let pr = p + i * T, dr = dp + i * T
                        var dot: Float = 0
                        for j in 0...i { dot += pr[j] * dr[j] }
                        gateGradient += dot
                        for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) * scaled }
                        for j in (i + 1)..<T { dr[j] = 0 }
                    }
                    if let dgates { dgates[b * gateStride + h] += gateGradient }
                    // dQ += dS · K ; dK += dSᵀ · Q
                    BLAS.gemm(.none, .none, m: T, n: D, k: T, a: dp, lda: T, b: k, ldb: S,
                              beta: 1, c: dq, ldc: S)
                    BLAS.gemm(.transposed, .none, m: T, n: D, k: T, a: dp, lda: T, b: q, ldb: S,
                              beta: 1, c: dk, ldc: S)
                }
            }
        }
    }
}
