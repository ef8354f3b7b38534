/// LayerNorm (GPT-2): out = (x − mean) · rstd · w + b over the last dimension.
public enum LayerNorm {
    /// - out, inp: [N, C]; mean, rstd: [N] (kept for backward); weight, bias: [C].
    public static func forward(
        out: FloatPointer, mean: FloatPointer, rstd: FloatPointer, inp: ConstFloatPointer,
        weight: ConstFloatPointer, bias: ConstFloatPointer?, N: Int, C: Int, eps: Float
    ) {
        Parallel.rows(N) { rows in
            for n in rows {
                let x = inp + n * C
                // Row sums in 16 lanes (TileMath): a plain loop's dependent adds stay scalar.
                let m = TileMath.sum(x, C) / Float(C)
                let v = TileMath.sumOfSquaredDeviations(x, C, from: m) / Float(C)
                let s = 1 / (v + eps).squareRoot()
                let o = out + n * C
                if let bias {
                    for i in 0..<C { o[i] = (x[i] - m) * s * weight[i] + bias[i] }
                } else {
                    for i in 0..<C { o[i] = (x[i] - m) * s * weight[i] }
                }
                mean[n] = m
                rstd[n] = s
            }
        }
    }

    /// dinp += ∂L/∂x; dweight += Σ dout·x̂; dbias += Σ dout. dweight/dbias nil when frozen.
    /// Weight gradients are reduced over rows in order, columns split over the workers.
    public static func backward(
        dinp: FloatPointer, dweight: FloatPointer?, dbias: FloatPointer?, dout: ConstFloatPointer,
        inp: ConstFloatPointer, weight: ConstFloatPointer, mean: ConstFloatPointer, rstd: ConstFloatPointer,
        N: Int, C: Int
    ) {
        Parallel.rows(N) { rows in
            for n in rows {
                let x = inp + n * C, d = dout + n * C, dx = dinp + n * C
                let m = mean[n], s = rstd[n]
                // Σ dnorm and Σ dnorm · x̂, with dnorm = d · w and x̂ = (x − m) · s, in 16 lanes.
                let dnormMean = TileMath.dot(d, weight, C) / Float(C)
                let dnormNormMean = TileMath.layerNormBackwardDot(d, weight, x, C, mean: m, rstd: s) / Float(C)
                for i in 0..<C {
                    let xhat = (x[i] - m) * s
                    dx[i] += (d[i] * weight[i] - dnormMean - xhat * dnormNormMean) * s
                }
            }
        }
        if dweight == nil && dbias == nil { return }
        // Split by columns: every row touches every column, each column is summed over rows in order.
        Parallel.rows(C, minimumPerChunk: 16) { cols in
            for n in 0..<N {
                let x = inp + n * C, d = dout + n * C
                let m = mean[n], s = rstd[n]
                if let dweight { for i in cols { dweight[i] += d[i] * (x[i] - m) * s } }
                if let dbias { for i in cols { dbias[i] += d[i] } }
            }
        }
    }
}

/// RMSNorm (Llama, Qwen2): out = x · rstd · w with rstd = 1/√(mean(x²) + eps).
public enum RMSNorm {
    /// - out, inp: [N, C]; rstd: [N] (kept for backward); weight: [C].
    public static func forward(
        out: FloatPointer, rstd: FloatPointer, inp: ConstFloatPointer, weight: ConstFloatPointer,
        N: Int, C: Int, eps: Float
    ) {
        Parallel.rows(N) { rows in
            for n in rows {
                let x = inp + n * C, o = out + n * C
                let ss = TileMath.dot(x, x, C)
                let s = 1 / (ss / Float(C) + eps).squareRoot()
                for i in 0..<C { o[i] = weight[i] * (x[i] * s) }
                rstd[n] = s
            }
        }
    }

    public static func backward(
        dinp: FloatPointer, dweight: FloatPointer?, dout: ConstFloatPointer, inp: ConstFloatPointer,
        weight: ConstFloatPointer, rstd: ConstFloatPointer, N: Int, C: Int
    ) {
        Parallel.rows(N) { rows in
            for n in rows {
                let x = inp + n * C, d = dout + n * C, dx = dinp + n * C
                let s = rstd[n]
                // Σ dnorm · x̂ = s · Σ d · w · x
                let dot = s * TileMath.dot3(d, weight, x, C) / Float(C)
                for i in 0..<C { dx[i] += s * (d[i] * weight[i] - x[i] * s * dot) }
            }
        }
        guard let dweight else { return }
        Parallel.rows(C, minimumPerChunk: 16) { cols in
            for n in 0..<N {
                let x = inp + n * C, d = dout + n * C
                let s = rstd[n]
                for i in cols { dweight[i] += d[i] * x[i] * s }
            }
        }
    }
}
