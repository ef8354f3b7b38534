import CBLAS

/// Whether a matrix operand enters a product as stored or transposed.
public enum Transpose: Sendable, CaseIterable {
    case none, transposed

    var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// The BLAS façade: every matrix product in Subspace goes through here, on row-major operands.
///
/// Pointer-level entry points take leading dimensions like cblas (for slices of larger buffers);
/// tensor-level ones check shapes and allocate their result.
public enum BLAS {
    /// C ← alpha · op(A) · op(B) + beta · C, row-major. op(A) is [m, k], op(B) is [k, n], C is [m, n].
    /// beta = 1 accumulates into C (how backward passes add into gradients).
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm with negative size m=\(m) n=\(n) k=\(k)")
        precondition(lda >= max(1, transA == .none ? k : m), "gemm: lda \(lda) too small")
        precondition(ldb >= max(1, transB == .none ? n : k), "gemm: ldb \(ldb) too small")
        precondition(ldc >= max(1, n), "gemm: ldc \(ldc) too small")
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y ← alpha · op(A) · x + beta · y, A row-major [m, n].
    public static func gemv(
        _ trans: Transpose, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        precondition(lda >= max(1, n), "gemv: lda \(lda) too small")
        if m == 0 || n == 0 { return }
        cblas_sgemv(CblasRowMajor, trans.cblas, Int32(m), Int32(n), alpha, a, Int32(lda),
                    x, 1, beta, y, 1)
    }

    /// C ← alpha · Aᵀ·A + beta · C in double precision, row-major: A is [k, n] (k rows of width n), C is
    /// [n, n] and only its upper triangle (row ≤ column) is written. For covariances Σ xxᵀ of rows x.
    public static func syrkTransposed(
        n: Int, k: Int, alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        beta: Double = 1, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        precondition(n >= 0 && k >= 0 && lda >= max(1, n) && ldc >= max(1, n), "syrk: bad sizes n=\(n) k=\(k) lda=\(lda) ldc=\(ldc)")
        if n == 0 { return }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(k), alpha, a, Int32(lda), beta, c, Int32(ldc))
    }

    /// y ← alpha · x + y
    public static func axpy(count: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(count), alpha, x, 1, y, 1)
    }

    /// x ← alpha · x
    public static func scal(count: Int, alpha: Float, x: UnsafeMutablePointer<Float>) {
        cblas_sscal(Int32(count), alpha, x, 1)
    }

    /// xᵀy
    public static func dot(count: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>) -> Float {
        cblas_sdot(Int32(count), x, 1, y, 1)
    }

    /// ‖x‖₂
    public static func nrm2(count: Int, x: UnsafePointer<Float>) -> Float {
        cblas_snrm2(Int32(count), x, 1)
    }

    /// Threads in OpenBLAS's pool (process-wide).
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// OpenBLAS's build description (kernel, threading), for logs and bench output.
    public static var configuration: String { String(cString: openblas_get_config()) }
}

extension BLAS {
    /// op(A) · op(B) for 2-D tensors, scaled by alpha.
    public static func matmul(_ a: Tensor, _ b: Tensor, transA: Transpose = .none, transB: Transpose = .none,
                              alpha: Float = 1) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul needs 2-D tensors, got \(a.shape) and \(b.shape)")
        let (m, k) = transA == .none ? (a.shape[0], a.shape[1]) : (a.shape[1], a.shape[0])
        let (k2, n) = transB == .none ? (b.shape[0], b.shape[1]) : (b.shape[1], b.shape[0])
        precondition(k == k2, "matmul inner dimensions differ: \(a.shape)\(transA == .none ? "" : "ᵀ") · \(b.shape)\(transB == .none ? "" : "ᵀ")")
        var c = Tensor(zeros: [m, n])
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm(transA, transB, m: m, n: n, k: k, alpha: alpha,
                         a: pa.baseAddress!, lda: a.shape[1], b: pb.baseAddress!, ldb: b.shape[1],
                         beta: 0, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }
}

extension Tensor {
    /// The transpose of a 2-D tensor (a copy).
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() needs a 2-D tensor, got \(shape)")
        let (rows, cols) = (shape[0], shape[1])
        return withUnsafeBufferPointer { src in
            Tensor(shape: [cols, rows]) { dst in
                for i in 0..<rows { for j in 0..<cols { dst[j * rows + i] = src[i * cols + j] } }
            }
        }
    }

    /// Frobenius (or vector 2-) norm.
    public var norm: Float { withUnsafeBufferPointer { BLAS.nrm2(count: $0.count, x: $0.baseAddress!) } }

    /// self − other, elementwise.
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor {
        precondition(lhs.shape == rhs.shape, "shapes differ: \(lhs.shape) − \(rhs.shape)")
        var out = lhs
        out.withUnsafeMutableBufferPointer { o in
            rhs.withUnsafeBufferPointer { r in BLAS.axpy(count: o.count, alpha: -1, x: r.baseAddress!, y: o.baseAddress!) }
        }
        return out
    }

    /// self + other, elementwise.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor {
        precondition(lhs.shape == rhs.shape, "shapes differ: \(lhs.shape) + \(rhs.shape)")
        var out = lhs
        out.withUnsafeMutableBufferPointer { o in
            rhs.withUnsafeBufferPointer { r in BLAS.axpy(count: o.count, alpha: 1, x: r.baseAddress!, y: o.baseAddress!) }
        }
        return out
    }
}
