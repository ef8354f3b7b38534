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
        forward(out: out, ldOut: ldOut, inp: inp, ldIn: ldIn, weight: LinearWeight(weight), bias: bias,
                N: N, IC: IC, OC: OC, accumulate: accumulate)
    }

    /// As above; a weight with a bf16 copy runs the product in bf16 (inputs rounded to bf16, fp32
    /// accumulation and output), the bias added in fp32.
    public static func forward(
        out: FloatPointer, ldOut: Int, inp: ConstFloatPointer, ldIn: Int, weight: LinearWeight,
        bias: ConstFloatPointer?, N: Int, IC: Int, OC: Int, accumulate: Bool = false
    ) {
        if let w16 = weight.bf16, let scratch = weight.scratch {
            let inp16 = scratch.convert(0, rows: N, cols: IC, inp, ld: ldIn)
            BF16GEMM.gemm(.none, .transposed, m: N, n: OC, k: IC, a: inp16, lda: IC, b: w16, ldb: IC,
                          beta: accumulate ? 1 : 0, c: out, ldc: ldOut, using: scratch.backend)
        } else {
            ParallelGEMM.gemm(.none, .transposed, m: N, n: OC, k: IC, a: inp, lda: ldIn, b: weight.fp32, ldb: IC,
                              beta: accumulate ? 1 : 0, c: out, ldc: ldOut)
        }
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
        backward(dinp: dinp, ldDinp: ldDinp, dweight: dweight, dbias: dbias, dout: dout, ldDout: ldDout, inp: inp,
                 ldIn: ldIn, weight: LinearWeight(weight), N: N, IC: IC, OC: OC)
    }

    /// As above; a weight with a bf16 copy runs both products in bf16 (dout and inp rounded to bf16, fp32
    /// accumulation into dinp and dweight), as autocast's backward does.
    public static func backward(
        dinp: FloatPointer?, ldDinp: Int, dweight: FloatPointer?, dbias: FloatPointer?,
        dout: ConstFloatPointer, ldDout: Int, inp: ConstFloatPointer, ldIn: Int, weight: LinearWeight,
        N: Int, IC: Int, OC: Int
    ) {
        if let w16 = weight.bf16, let scratch = weight.scratch, dinp != nil || dweight != nil {
            let dout16 = scratch.convert(1, rows: N, cols: OC, dout, ld: ldDout)
            if let dinp {
                BF16GEMM.gemm(.none, .none, m: N, n: IC, k: OC, a: dout16, lda: OC, b: w16, ldb: IC,
                              beta: 1, c: dinp, ldc: ldDinp, using: scratch.backend)
            }
            if let dweight {
                let inp16 = scratch.convert(0, rows: N, cols: IC, inp, ld: ldIn)
                BF16GEMM.gemm(.transposed, .none, m: OC, n: IC, k: N, a: dout16, lda: OC, b: inp16, ldb: IC,
                              beta: 1, c: dweight, ldc: IC, using: scratch.backend)
            }
            if let dbias { biasBackward(dbias: dbias, dout: dout, ldDout: ldDout, N: N, OC: OC) }
            return
        }
        let weight = weight.fp32
        if let dinp {
            ParallelGEMM.gemm(.none, .none, m: N, n: IC, k: OC, a: dout, lda: ldDout, b: weight, ldb: IC,
                              beta: 1, c: dinp, ldc: ldDinp)
        }
        if let dweight {
            ParallelGEMM.gemm(.transposed, .none, m: OC, n: IC, k: N, a: dout, lda: ldDout, b: inp, ldb: ldIn,
                              beta: 1, c: dweight, ldc: IC)
        }
        if let dbias { biasBackward(dbias: dbias, dout: dout, ldDout: ldDout, N: N, OC: OC) }
    }

    /// dbias += Σ_rows dout (fp32 in either precision).
    static func biasBackward(dbias: FloatPointer, dout: ConstFloatPointer, ldDout: Int, N: Int, OC: Int) {
        // Column sums, split by columns so threads never share an output.
        Parallel.rows(OC, minimumPerChunk: 32) { cols in
            for n in 0..<N {
                let d = dout + n * ldDout
                for j in cols { dbias[j] += d[j] }
            }
        }
    }
}
