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
    /// The tiled attention's per-worker tiles (no [rows, capacity] scores are held).
    private var tiles = TensorStorage(capacity: 1)

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
        let K = keys[l].pointer, V = values[l].pointer
        for t in 0..<T {
            for g in 0..<G {
                (K + (g * capacity + p0 + t) * D).update(from: qkv + t * S + H * D + g * D, count: D)
                (V + (g * capacity + p0 + t) * D).update(from: qkv + t * S + (H + G) * D + g * D, count: D)
            }
        }
        let attention = Attention(B: 1, T: T, H: H, G: G, D: D, keyLength: capacity)
        if tiles.capacity < attention.scratchCount { tiles = TensorStorage(capacity: attention.scratchCount) }
        attention.forward(out: out, qkv: qkv, keys: K, values: V, headStride: capacity * D, position: p0,
                          scratch: tiles.pointer, gates: gates)
    }
}
