import Foundation

/// Rotary position embedding as HF's Llama applies it ("rotate half"): for each head, the pair
/// (x[i], x[i + d/2]) is rotated by the angle t·θ^(−2i/d).
public struct Rotary: Sendable {
    public let headDimension: Int
    public let maxPositions: Int
    /// cos and sin tables, [maxPositions, headDimension/2].
    let cosTable: [Float]
    let sinTable: [Float]

    /// Frequencies are computed in float32 the way HF does (inv_freq = 1/θ^(2i/d), angle = t·inv_freq),
    /// so positions agree with PyTorch to rounding.
    public init(headDimension d: Int, maxPositions: Int, theta: Float, scaling: RotaryScaling? = nil) {
        headDimension = d
        self.maxPositions = maxPositions
        let half = d / 2
        let invFreq = Self.inverseFrequencies(headDimension: d, theta: theta, scaling: scaling)
        var c = [Float](repeating: 0, count: maxPositions * half)
        var s = c
        for t in 0..<maxPositions {
            for i in 0..<half {
                let angle = Float(t) * invFreq[i]
                c[t * half + i] = cosf(angle)
                s[t * half + i] = sinf(angle)
            }
        }
        cosTable = c
        sinTable = s
    }

    /// 1/θ^(2i/d) for i < d/2 in float32, then the scaling's rule.
    public static func inverseFrequencies(headDimension d: Int, theta: Float, scaling: RotaryScaling?) -> [Float] {
        let invFreq = (0..<(d / 2)).map { 1 / powf(theta, Float(2 * $0) / Float(d)) }
        return scaling?.apply(invFreq) ?? invFreq
    }

    /// Rotates `heads` heads of `headDimension` at `x` (contiguous) for position `t`; `inverse` rotates
    /// by −angle, which is the backward pass (the rotation is orthogonal).
    func rotate(_ x: FloatPointer, heads: Int, position t: Int, inverse: Bool) {
        let half = headDimension / 2
        cosTable.withUnsafeBufferPointer { cp in
            sinTable.withUnsafeBufferPointer { sp in
                let c = cp.baseAddress! + t * half, s = sp.baseAddress! + t * half
                for h in 0..<heads {
                    let p = x + h * headDimension
                    for i in 0..<half {
                        let a = p[i], b = p[i + half]
                        let sn = inverse ? -s[i] : s[i]
                        p[i] = a * c[i] - b * sn
                        p[i + half] = b * c[i] + a * sn
                    }
                }
            }
        }
    }

    /// Rotates the q and k parts of a fused qkv activation in place.
    /// - qkv: [B·T, rowStride] with q heads at column 0 and `kvHeads` k heads at `kOffset`;
    ///   positions are `positionOffset + t`.
    public func apply(qkv: FloatPointer, rowStride: Int, queryHeads: Int, kvHeads: Int, kOffset: Int,
                      B: Int, T: Int, positionOffset: Int = 0, inverse: Bool = false) {
        precondition(positionOffset + T <= maxPositions, "position \(positionOffset + T) beyond the rotary table (\(maxPositions))")
        Parallel.rows(B * T) { rows in
            for bt in rows {
                let row = qkv + bt * rowStride
                let t = positionOffset + bt % T
                rotate(row, heads: queryHeads, position: t, inverse: inverse)
                rotate(row + kOffset, heads: kvHeads, position: t, inverse: inverse)
            }
        }
    }
}
