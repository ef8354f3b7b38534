import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// How much fine-tuning moved each attention head's weights.
///
/// Head h of layer l owns rows [h·D, (h+1)·D) of W_Q, rows [g·D, (g+1)·D) of W_K and W_V with
/// g = h / (H/G) (its key/value head under grouped-query attention, so query heads that share a key/value
/// head share that part of their update), and columns [h·D, (h+1)·D) of W_O (all as [out, in]; GPT-2's
/// fused c_attn is sliced into its q, k and v rows by the layout). Per head:
/// `absolute` = ‖ΔW_head‖_F over those four slices, `relative` = absolute / ‖W_head‖_F (the base's
/// slices), and the four parts' ‖ΔW‖_F apart.
public struct HeadUpdates: Codable, Sendable, Equatable {
    public var layers: Int
    public var heads: Int
    public var absolute: [[Double]]
    public var relative: [[Double]]
    public var q: [[Double]]
    public var k: [[Double]]
    public var v: [[Double]]
    public var o: [[Double]]
}

public enum HeadUpdateMeasure {
    /// Collective. Per-head updates given, for each layer and each of q, k, v, o, ΔW as [out, in] in
    /// double precision (nil: no change). Layers are split round-robin over the ranks; results are summed
    /// across ranks from zero-filled buffers (exact), so every world size gives the same numbers.
    public static func measure(base: Transformer, communicator: any Communicator,
                               delta: (Int, LayerTensor) -> [Double]?) throws -> HeadUpdates {
        let c = base.config
        let (L, H, G, D, C) = (c.layerCount, c.headCount, c.keyValueHeadCount, c.headDimension, c.hiddenSize)
        let group = H / G
        // Per (layer, head): squared norms of ΔQ, ΔK, ΔV, ΔO and of the base slices.
        var sums = [Double](repeating: 0, count: L * H * 5)
        for l in stride(from: communicator.rank, to: L, by: communicator.size) {
            var dq = [Double](repeating: 0, count: H), dk = [Double](repeating: 0, count: G)
            var dv = dk, dout = dq, baseQ = dq, baseK = dk, baseV = dk, baseO = dq
            func rowBlocks(_ values: [Double], rows: Int, cols: Int, into out: inout [Double]) {
                for r in 0..<rows { for j in 0..<cols { out[r / D] += values[r * cols + j] * values[r * cols + j] } }
            }
            func columnBlocks(_ values: [Double], rows: Int, cols: Int, into out: inout [Double]) {
                for r in 0..<rows { for j in 0..<cols { out[j / D] += values[r * cols + j] * values[r * cols + j] } }
            }
            func weights(_ part: LayerTensor) -> [Double] { base.tensor(.layer(l, part)).scalars.map(Double.init) }
            if let d = delta(l, .q) { rowBlocks(d, rows: H * D, cols: C, into: &dq) }
            if let d = delta(l, .k) { rowBlocks(d, rows: G * D, cols: C, into: &dk) }
            if let d = delta(l, .v) { rowBlocks(d, rows: G * D, cols: C, into: &dv) }
            if let d = delta(l, .o) { columnBlocks(d, rows: C, cols: H * D, into: &dout) }
            rowBlocks(weights(.q), rows: H * D, cols: C, into: &baseQ)
            rowBlocks(weights(.k), rows: G * D, cols: C, into: &baseK)
            rowBlocks(weights(.v), rows: G * D, cols: C, into: &baseV)
            columnBlocks(weights(.o), rows: C, cols: H * D, into: &baseO)
            for h in 0..<H {
                let g = h / group, at = (l * H + h) * 5
                sums[at] = dq[h]; sums[at + 1] = dk[g]; sums[at + 2] = dv[g]; sums[at + 3] = dout[h]
                sums[at + 4] = baseQ[h] + baseK[g] + baseV[g] + baseO[h]
            }
        }
        if communicator.size > 1 { try communicator.allReduce(&sums, op: .sum) }
        func grid(_ value: (Int) -> Double) -> [[Double]] { (0..<L).map { l in (0..<H).map { value((l * H + $0) * 5) } } }
        let absolute = grid { (sums[$0] + sums[$0 + 1] + sums[$0 + 2] + sums[$0 + 3]).squareRoot() }
        return HeadUpdates(
            layers: L, heads: H, absolute: absolute,
            relative: grid { i in
                let a = (sums[i] + sums[i + 1] + sums[i + 2] + sums[i + 3]).squareRoot(), w = sums[i + 4].squareRoot()
                return w > 0 ? a / w : 0
            },
            q: grid { sums[$0].squareRoot() }, k: grid { sums[$0 + 1].squareRoot() },
            v: grid { sums[$0 + 2].squareRoot() }, o: grid { sums[$0 + 3].squareRoot() })
    }

    /// Collective. Full fine-tuning: ΔW = W_tuned − W_base, the difference taken in double precision.
    public static func fullFineTuning(base: Transformer, tuned: Transformer, communicator: any Communicator) throws -> HeadUpdates {
        precondition(base.config.layerCount == tuned.config.layerCount && base.layout.totalCount == tuned.layout.totalCount,
                     "base and tuned models differ in shape")
        return try measure(base: base, communicator: communicator) { l, part in
            let (b, t) = (base.tensor(.layer(l, part)).scalars, tuned.tensor(.layer(l, part)).scalars)
            return zip(t, b).map { Double($0) - Double($1) }
        }
    }

    /// Collective. LoRA: ΔW = scale · B·A for every adapted module, in double precision; a fused module
    /// (GPT-2's c_attn) is cut into its parts' rows.
    public static func lora(base: Transformer, adapters: LoRAAdapters, communicator: any Communicator) throws -> HeadUpdates {
        let r = adapters.config.rank, scale = Double(adapters.config.scale)
        return try measure(base: base, communicator: communicator) { l, part in
            guard let a = adapters.adapters.first(where: { $0.module.layer == l && $0.module.parts.contains(part) }) else { return nil }
            let m = a.module
            var first = 0
            for p in m.parts {
                if p == part { break }
                first += base.layout[.layer(l, p)].shape[0]
            }
            let rows = base.layout[.layer(l, part)].shape[0], cols = m.inFeatures
            let A = adapters.storage.pointer + a.aOffset, B = adapters.storage.pointer + a.bOffset
            var out = [Double](repeating: 0, count: rows * cols)
            for i in 0..<rows {
                for k in 0..<r {
                    let b = scale * Double(B[(first + i) * r + k])
                    if b == 0 { continue }
                    for j in 0..<cols { out[i * cols + j] += b * Double(A[k * cols + j]) }
                }
            }
            return out
        }
    }
}
