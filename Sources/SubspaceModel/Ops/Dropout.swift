import SubspaceCore

/// Inverted dropout with masks that are a pure function of (stream, row): row n of a mask draws from
/// `stream.split(n)`. So masks do not depend on the thread count, rows are drawn in parallel, and a
/// recomputation (activation checkpointing) draws the very same masks.
public enum Dropout {
    /// mask[n, i] = 0 with probability `probability`, else 1/(1 − probability); x ⊙= mask.
    /// - x, mask: [N, C]
    public static func forward(x: FloatPointer, mask: FloatPointer, stream: RandomStream, probability: Float, N: Int, C: Int) {
        draw(mask: mask, stream: stream, probability: probability, N: N, C: C, applyingTo: x)
    }

    /// The mask alone (what a recomputation that needs only the mask draws), or applied to `x` too.
    public static func draw(mask: FloatPointer, stream: RandomStream, probability: Float, N: Int, C: Int,
                            applyingTo x: FloatPointer? = nil) {
        let keep = 1 - probability, scale = 1 / keep
        Parallel.rows(N, minimumPerChunk: 16) { rows in
            for n in rows {
                var rng = stream.split(UInt64(n))
                let m = mask + n * C
                for i in 0..<C { m[i] = rng.nextUniform() < keep ? scale : 0 }
                if let x {
                    let v = x + n * C
                    for i in 0..<C { v[i] *= m[i] }
                }
            }
        }
    }

    /// out = dout ⊙ mask. - out, dout, mask: [count]
    public static func backward(out: FloatPointer, dout: ConstFloatPointer, mask: ConstFloatPointer, count: Int) {
        Parallel.rows(count, minimumPerChunk: 16384) { r in
            for i in r { out[i] = dout[i] * mask[i] }
        }
    }
}
