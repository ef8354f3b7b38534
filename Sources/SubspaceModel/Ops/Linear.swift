import SubspaceCore

/// GEMMs split over `Parallel.workers` threads, each calling single-threaded BLAS on its block of C.
/// The model runs BLAS with one thread and parallelises every kernel itself: OpenBLAS's own pool,
/// entered from several threads at once (attention runs one GEMM per head in parallel), serialises and
/// spins, which measured 10× slower on attention.
public enum ParallelGEMM {
    /// Same contract as `BLAS.gemm`. C is split by rows when it has enough of them, else by columns.
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let workers = Parallel.workers
        let work = m * n * k
        if workers <= 1 || work < 1 << 20 {
            BLAS.gemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        if m >= n || n < 2 * workers {
            // Rows of C ↔ rows of op(A): row i of op(A) starts at a + i·lda (as stored) or a + i (transposed).
            Parallel.chunks(m, chunks: workers) { _, rows in
                let offsetA = transA == .none ? rows.lowerBound * lda : rows.lowerBound
                BLAS.gemm(transA, transB, m: rows.count, n: n, k: k, alpha: alpha, a: a + offsetA, lda: lda,
                          b: b, ldb: ldb, beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
            }
        } else {
            // Columns of C ↔ columns of op(B): column j of op(B) starts at b + j (as stored) or b + j·ldb.
            Parallel.chunks(n, chunks: workers) { _, cols in
                let offsetB = transB == .none ? cols.lowerBound : cols.lowerBound * ldb
                BLAS.gemm(transA, transB, m: m, n: cols.count, k: k, alpha: alpha, a: a, lda: lda,
                          b: b + offsetB, ldb: ldb, beta: beta, c: c + cols.lowerBound, ldc: ldc)
            }
        }
    }
}

/// A dense layer through BLAS: out = inp · Wᵀ + b, with W stored [OC, IC] (PyTorch's Linear).
/// Leading dimensions let inputs and outputs be column blocks of wider activations (e.g. the q, k and v
/// parts of a fused qkv activation).
public enum Linear {
    /// - out: [N, OC] with row stride ldOut; inp: [N, IC] with row stride ldIn; weight: [OC, IC];
    ///   bias: [OC] or nil. `accumulate` adds into `out` instead of overwriting it.
    public static func forward(
        out: FloatPointer, ldOut: Int, inp: ConstFloatPointer, ldIn: Int, weight: ConstFloatPointer,
        bias: ConstFloatPointer?, N: Int, IC: Int, OC: Int, accumulate: Bool = false
    ) {
        ParallelGEMM.gemm(.none, .transposed, m: N, n: OC, k: IC, a: inp, lda: ldIn, b: weight, ldb: IC,
                          beta: accumulate ? 1 : 0, c: out, ldc: ldOut)
        if let bias {
            Parallel.rows(N) { rows in
                for n in rows {
                    let o = out + n * ldOut
                    for j in 0..<OC { o[j] += bias[j] }
                }
            }
        }
    }

    /// dinp += dout · W; dweight += doutᵀ · inp; dbias += Σ_rows dout. Pass nil for what is not needed
    /// (a frozen weight skips its GEMM entirely; the first layer's input needs no gradient).
    public static func backward(
        dinp: FloatPointer?, ldDinp: Int, dweight: FloatPointer?, dbias: FloatPointer?,
        dout: ConstFloatPointer, ldDout: Int, inp: ConstFloatPointer, ldIn: Int, weight: ConstFloatPointer,
        N: Int, IC: Int, OC: Int
    ) {
        if let dinp {
            ParallelGEMM.gemm(.none, .none, m: N, n: IC, k: OC, a: dout, lda: ldDout, b: weight, ldb: IC,
                              beta: 1, c: dinp, ldc: ldDinp)
        }
        if let dweight {
            ParallelGEMM.gemm(.transposed, .none, m: OC, n: IC, k: N, a: dout, lda: ldDout, b: inp, ldb: ldIn,
                              beta: 1, c: dweight, ldc: IC)
        }
        if let dbias {
            // Column sums, split by columns so threads never share an output.
            Parallel.rows(OC, minimumPerChunk: 32) { cols in
                for n in 0..<N {
                    let d = dout + n * ldDout
                    for j in cols { dbias[j] += d[j] }
                }
            }
        }
    }
}
