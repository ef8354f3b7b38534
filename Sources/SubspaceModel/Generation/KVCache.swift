import Foundation
import SubspaceCore

/// Keys and values of every position a sequence has seen, per layer, and the attention of new rows
/// against them: what `TransformerLayer.forward` calls for `.cached` attention during generation.
/// Legend: G key/value heads, D head dimension, H query heads, S fused qkv row stride.
final class KVCache {
    let config: ModelConfig
    /// Positions the cache holds.
    let capacity: Int
    private let keys: [TensorStorage]     // per layer [G, capacity, D]
    private let values: [TensorStorage]
    /// Scores of the new rows against every cached position, [rows, capacity].
    private var scores = TensorStorage(capacity: 1)

    init(config c: ModelConfig, capacity: Int) {
        config = c
        self.capacity = capacity
        keys = (0..<c.layerCount).map { _ in TensorStorage(capacity: c.keyValueHeadCount * capacity * c.headDimension) }
        values = (0..<c.layerCount).map { _ in TensorStorage(capacity: c.keyValueHeadCount * capacity * c.headDimension) }
    }

    /// Appends the keys and values of `T` new rows (at positions `position…`) from `qkv` [T, S] (after
    /// rotary), then writes their attention output [T, H·D] into `out`: row i sees positions
    /// 0 … position + i. Head h's output is multiplied by its gate when there are gates.
    func attend(layer l: Int, out: FloatPointer, qkv: ConstFloatPointer, T: Int, position p0: Int, gates: ConstFloatPointer?) {
        let c = config
        let (H, G, D, S) = (c.headCount, c.keyValueHeadCount, c.headDimension, c.qkvWidth)
        let length = p0 + T
        precondition(length <= capacity, "position \(length) beyond the cache (\(capacity))")
        if scores.capacity < T * length { scores = TensorStorage(capacity: T * capacity) }
        let K = keys[l].pointer, V = values[l].pointer, scores = scores.pointer
        for t in 0..<T {
            for g in 0..<G {
                (K + (g * capacity + p0 + t) * D).update(from: qkv + t * S + H * D + g * D, count: D)
                (V + (g * capacity + p0 + t) * D).update(from: qkv + t * S + (H + G) * D + g * D, count: D)
            }
        }
        let scale = 1 / Float(D).squareRoot()
        for head in 0..<H {
            let g = head / (H / G)
            BLAS.gemm(.none, .transposed, m: T, n: length, k: D, alpha: scale, a: qkv + head * D, lda: S,
                      b: K + g * capacity * D, ldb: D, beta: 0, c: scores, ldc: length)
            for i in 0..<T {
                let row = scores + i * length
                let visible = p0 + i + 1
                var top = -Float.infinity
                for j in 0..<visible { top = max(top, row[j]) }
                var sum: Float = 0
                for j in 0..<visible { row[j] = expf(row[j] - top); sum += row[j] }
                for j in 0..<visible { row[j] /= sum }
                for j in visible..<length { row[j] = 0 }
            }
            BLAS.gemm(.none, .none, m: T, n: D, k: length, alpha: gates?[head] ?? 1, a: scores, lda: length,
                      b: V + g * capacity * D, ldb: D, beta: 0, c: out + head * D, ldc: H * D)
        }
    }
}
