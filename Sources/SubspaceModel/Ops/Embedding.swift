/// Token (and, for GPT-2, learned position) embedding.
public enum Embedding {
    /// out[b,t,:] = wte[ids[b,t],:] (+ wpe[positionOffset + t,:]).
    /// - out: [B·T, C]; ids: [B·T]; wte: [V, C]; wpe: [P, C] or nil.
    public static func forward(
        out: FloatPointer, ids: UnsafePointer<Int32>, wte: ConstFloatPointer, wpe: ConstFloatPointer?,
        B: Int, T: Int, C: Int, positionOffset: Int = 0
    ) {
        Parallel.rows(B * T) { rows in
            for bt in rows {
                let o = out + bt * C
                let e = wte + Int(ids[bt]) * C
                if let wpe {
                    let p = wpe + (positionOffset + bt % T) * C
                    for i in 0..<C { o[i] = e[i] + p[i] }
                } else {
                    o.update(from: e, count: C)
                }
            }
        }
    }

    /// dwte[ids[b,t],:] += dout[b,t,:]; dwpe[t,:] += dout[b,t,:]. Split by columns: rows with equal ids
    /// collide, columns never do, and each column is summed over rows in order (the result does not depend
    /// on the thread count).
    public static func backward(
        dwte: FloatPointer?, dwpe: FloatPointer?, dout: ConstFloatPointer, ids: UnsafePointer<Int32>,
        B: Int, T: Int, C: Int
    ) {
        Parallel.rows(C, minimumPerChunk: 16) { cols in
            for bt in 0..<(B * T) {
                let d = dout + bt * C
                if let dwte {
                    let g = dwte + Int(ids[bt]) * C
                    for i in cols { g[i] += d[i] }
                }
                if let dwpe {
                    let g = dwpe + (bt % T) * C
                    for i in cols { g[i] += d[i] }
                }
            }
        }
    }
}
