/// Token (and, for GPT-2, learned position) embedding.
public enum Embedding {
    /// out[b,t,:] = wte[ids[b,t],:] (+ wpe[positionOffset + t,:]).
    /// - out: [B·T, C]; ids: [B·T]; wte: [V, C]; wpe: [P, C] or nil.
    /// - rows: a vocabulary slice: `wte` then points at row `rows.lowerBound`, and only the positions whose
    ///   token is in `rows` are written (the others are left as they are). nil: every position.
    public static func forward(
        out: FloatPointer, ids: UnsafePointer<Int32>, wte: ConstFloatPointer, rows: Range<Int>? = nil, wpe: ConstFloatPointer?,
        B: Int, T: Int, C: Int, positionOffset: Int = 0
    ) {
        let first = rows?.lowerBound ?? 0
        Parallel.rows(B * T) { positions in
            for bt in positions {
                let id = Int(ids[bt])
                if let rows, !rows.contains(id) { continue }
                let o = out + bt * C
                let e = wte + (id - first) * C
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
    /// on the thread count). With `rows` (a vocabulary slice, `dwte` pointing at its first row) only the
    /// positions whose token is in the slice add to `dwte`; `dwpe` still gets every position.
    public static func backward(
        dwte: FloatPointer?, rows: Range<Int>? = nil, dwpe: FloatPointer?, dout: ConstFloatPointer, ids: UnsafePointer<Int32>,
        B: Int, T: Int, C: Int
    ) {
        let first = rows?.lowerBound ?? 0
        Parallel.rows(C, minimumPerChunk: 16) { cols in
            for bt in 0..<(B * T) {
                let d = dout + bt * C
                if let dwte {
                    let id = Int(ids[bt])
                    if rows?.contains(id) ?? true {
                        let g = dwte + (id - first) * C
                        for i in cols { g[i] += d[i] }
                    }
                }
                if let dwpe {
                    let g = dwpe + (bt % T) * C
                    for i in cols { g[i] += d[i] }
                }
            }
        }
    }
}
