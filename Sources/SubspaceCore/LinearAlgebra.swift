import CLAPACKE
import Foundation

/// A LAPACK driver that reported failure through its `info` argument.
public struct LAPACKError: Error, CustomStringConvertible, Equatable {
    /// The routine that failed, e.g. "sgesdd".
    public let routine: String
    /// LAPACK's `info`: < 0 names an illegal argument, > 0 a numerical failure (e.g. no convergence).
    public let info: Int32
    public let shape: [Int]

    public var description: String {
        let what = info < 0 ? "argument \(-info) had an illegal value" : "failed to converge (info \(info))"
        return "LAPACK \(routine) on a \(shape.map(String.init).joined(separator: "×")) matrix: \(what)"
    }
}

/// A thin singular value decomposition A = U · diag(S) · Vᵀ of an m×n matrix, k = min(m, n)
/// (or the requested rank for a truncated one). Singular values are non-negative and descending.
public struct SVD: Sendable {
    /// [m, k], orthonormal columns.
    public var u: Tensor
    /// k singular values, descending.
    public var s: [Float]
    /// [k, n], orthonormal rows.
    public var vt: Tensor

    /// U · diag(S) · Vᵀ using the leading `rank` components (all by default).
    public func reconstruct(rank: Int? = nil) -> Tensor {
        let r = min(rank ?? s.count, s.count)
        let (m, n) = (u.shape[0], vt.shape[1])
        var us = u.leadingColumns(r)
        us.withUnsafeMutableBufferPointer { p in
            for i in 0..<m { for j in 0..<r { p[i * r + j] *= s[j] } }
        }
        let vtr = vt.view(offset: 0, shape: [r, n])
        return BLAS.matmul(us, vtr)
    }

    /// The leading `rank` components.
    public func truncated(rank: Int) -> SVD {
        let r = min(rank, s.count)
        return SVD(u: u.leadingColumns(r), s: Array(s.prefix(r)),
                   vt: Tensor(shape: [r, vt.shape[1]], values: vt.view(offset: 0, shape: [r, vt.shape[1]]).scalars))
    }
}

extension Tensor {
    /// The first `k` columns of a 2-D tensor (a copy).
    public func leadingColumns(_ k: Int) -> Tensor {
        precondition(rank == 2 && k >= 0 && k <= shape[1], "leadingColumns(\(k)) of \(shape)")
        let (rows, cols) = (shape[0], shape[1])
        if k == cols { return Tensor(shape: shape, values: scalars) }
        return withUnsafeBufferPointer { src in
            Tensor(shape: [rows, k]) { dst in
                for i in 0..<rows {
                    _ = UnsafeMutableBufferPointer(rebasing: dst[(i * k)..<(i * k + k)])
                        .update(fromContentsOf: src[(i * cols)..<(i * cols + k)])
                }
            }
        }
    }
}

/// The LAPACK façade: dense factorizations of row-major float32 matrices, every `info` checked.
public enum LAPACK {
    /// Thin SVD through `sgesdd` (divide and conquer), falling back to `sgesvd` when `sgesdd` does not
    /// converge.
    ///
    /// A row-major m×n matrix is, byte for byte, its transpose in column-major order, so the drivers run
    /// column-major on Aᵀ = V Σ Uᵀ: LAPACK's `vt` output is then our U and its `u` our Vᵀ, each already in
    /// row-major order. This avoids the copies LAPACKE's row-major wrapper makes.
    public static func svd(_ a: Tensor) throws(LAPACKError) -> SVD {
        precondition(a.rank == 2, "svd needs a 2-D tensor, got \(a.shape)")
        let (m, n) = (a.shape[0], a.shape[1])
        let k = min(m, n)
        var u = Tensor(zeros: [m, k])
        var vt = Tensor(zeros: [k, n])
        var s = [Float](repeating: 0, count: k)
        if k == 0 { return SVD(u: u, s: s, vt: vt) }

        var work = a  // the drivers overwrite their input
        var info = work.withUnsafeMutableBufferPointer { pa in
            u.withUnsafeMutableBufferPointer { pu in
                vt.withUnsafeMutableBufferPointer { pvt in
                    LAPACKE_sgesdd(subspace_lapack_col_major, lapackChar("S"), Int32(n), Int32(m),
                                   pa.baseAddress, Int32(n), &s, pvt.baseAddress, Int32(n),
                                   pu.baseAddress, Int32(k))
                }
            }
        }
        if info > 0 {
            work = a
            var superb = [Float](repeating: 0, count: max(k - 1, 1))
            info = work.withUnsafeMutableBufferPointer { pa in
                u.withUnsafeMutableBufferPointer { pu in
                    vt.withUnsafeMutableBufferPointer { pvt in
                        LAPACKE_sgesvd(subspace_lapack_col_major, lapackChar("S"), lapackChar("S"),
                                       Int32(n), Int32(m), pa.baseAddress, Int32(n), &s,
                                       pvt.baseAddress, Int32(n), pu.baseAddress, Int32(k), &superb)
                    }
                }
            }
            if info != 0 { throw LAPACKError(routine: "sgesvd (after sgesdd failed)", info: info, shape: a.shape) }
        } else if info < 0 {
            throw LAPACKError(routine: "sgesdd", info: info, shape: a.shape)
        }
        return SVD(u: u, s: s, vt: vt)
    }

    /// Singular values only (`sgesdd` without vectors).
    public static func singularValues(_ a: Tensor) throws(LAPACKError) -> [Float] {
        precondition(a.rank == 2, "singularValues needs a 2-D tensor, got \(a.shape)")
        let (m, n) = (a.shape[0], a.shape[1])
        var s = [Float](repeating: 0, count: min(m, n))
        if s.isEmpty { return s }
        var work = a
        var unusedU: Float = 0, unusedVt: Float = 0  // not referenced with job "N"
        let info = work.withUnsafeMutableBufferPointer { pa in
            LAPACKE_sgesdd(subspace_lapack_col_major, lapackChar("N"), Int32(n), Int32(m),
                           pa.baseAddress, Int32(n), &s, &unusedU, 1, &unusedVt, 1)
        }
        if info != 0 { throw LAPACKError(routine: "sgesdd", info: info, shape: a.shape) }
        return s
    }

    /// Eigendecomposition of a symmetric n×n matrix (`ssyevd`): A = V · diag(values) · Vᵀ with eigenvalues
    /// ascending and `vectors[:, i]` the unit eigenvector of `values[i]`. Only the upper triangle is read.
    public static func symmetricEigen(_ a: Tensor) throws(LAPACKError) -> (values: [Float], vectors: Tensor) {
        precondition(a.rank == 2 && a.shape[0] == a.shape[1], "symmetricEigen needs a square matrix, got \(a.shape)")
        let n = a.shape[0]
        var w = [Float](repeating: 0, count: n)
        if n == 0 { return (w, a) }
        // Column-major on the row-major buffer reads Aᵀ; with uplo "L" that is A's upper triangle.
        var v = a
        let info = v.withUnsafeMutableBufferPointer { pa in
            LAPACKE_ssyevd(subspace_lapack_col_major, lapackChar("V"), lapackChar("L"), Int32(n),
                           pa.baseAddress, Int32(n), &w)
        }
        if info != 0 { throw LAPACKError(routine: "ssyevd", info: info, shape: a.shape) }
        // Column-major output holds eigenvector i in memory row i; transpose so it is column i.
        return (w, v.transposed())
    }

    /// Eigendecomposition of a symmetric n×n matrix in double precision (`dsyevd`), row-major `a` with
    /// n² values of which only the upper triangle is read. Returns the eigenvalues ascending and the
    /// eigenvectors as rows: `vectors[i·n ..< (i+1)·n]` is the unit eigenvector of `values[i]`. Double
    /// precision because the smallest eigenvalues of a covariance (what null-space methods keep) sit
    /// near float32's rounding of the largest.
    public static func symmetricEigen(_ a: [Double], n: Int) throws(LAPACKError) -> (values: [Double], vectors: [Double]) {
        precondition(a.count == n * n, "symmetricEigen: \(a.count) values for n = \(n)")
        var w = [Double](repeating: 0, count: n)
        if n == 0 { return (w, []) }
        // Column-major on the row-major buffer reads Aᵀ; with uplo "L" that is A's upper triangle, and
        // the column-major eigenvector columns come back as rows of the row-major buffer.
        var v = a
        let info = v.withUnsafeMutableBufferPointer { pa in
            LAPACKE_dsyevd(subspace_lapack_col_major, lapackChar("V"), lapackChar("L"), Int32(n), pa.baseAddress, Int32(n), &w)
        }
        if info != 0 { throw LAPACKError(routine: "dsyevd", info: info, shape: [n, n]) }
        return (w, v)
    }

    /// Thin QR of an m×n matrix (`sgeqrf` + `sorgqr`), k = min(m, n): Q [m, k] with orthonormal columns,
    /// R [k, n] upper triangular, A = Q · R. R's diagonal signs are LAPACK's (not normalised).
    public static func qr(_ a: Tensor) throws(LAPACKError) -> (q: Tensor, r: Tensor) {
        precondition(a.rank == 2, "qr needs a 2-D tensor, got \(a.shape)")
        let (m, n) = (a.shape[0], a.shape[1])
        let k = min(m, n)
        var tau = [Float](repeating: 0, count: max(k, 1))
        var f = a
        var info = f.withUnsafeMutableBufferPointer { pa in
            LAPACKE_sgeqrf(subspace_lapack_row_major, Int32(m), Int32(n), pa.baseAddress, Int32(n), &tau)
        }
        if info != 0 { throw LAPACKError(routine: "sgeqrf", info: info, shape: a.shape) }
        let r = f.withUnsafeBufferPointer { pf in
            Tensor(shape: [k, n]) { pr in
                for i in 0..<k { for j in i..<n { pr[i * n + j] = pf[i * n + j] } }
            }
        }
        info = f.withUnsafeMutableBufferPointer { pa in
            LAPACKE_sorgqr(subspace_lapack_row_major, Int32(m), Int32(k), Int32(k), pa.baseAddress, Int32(n), &tau)
        }
        if info != 0 { throw LAPACKError(routine: "sorgqr", info: info, shape: a.shape) }
        return (f.leadingColumns(k), r)
    }

    /// An orthonormal basis of the column space of a tall m×l matrix (the Q of its QR).
    public static func orthonormalBasis(_ a: Tensor) throws(LAPACKError) -> Tensor {
        try qr(a).q
    }

    /// Truncated SVD of rank `rank` by randomized range finding (Halko, Martinsson & Tropp 2011,
    /// algorithms 4.4 and 5.1): sample the range with `rank + oversampling` Gaussian probes, sharpen it
    /// with `powerIterations` rounds of AᵀA, re-orthonormalising after every product so small singular
    /// values are not lost to rounding, then take the exact SVD of the small projected matrix.
    /// Costs O(mn(rank + oversampling)(1 + 2·powerIterations)) instead of a full SVD's O(mn·min(m,n)).
    public static func randomizedSVD(
        _ a: Tensor, rank: Int, oversampling: Int = 10, powerIterations: Int = 2,
        using rng: inout RandomStream
    ) throws(LAPACKError) -> SVD {
        precondition(a.rank == 2, "randomizedSVD needs a 2-D tensor, got \(a.shape)")
        precondition(rank >= 1 && oversampling >= 0 && powerIterations >= 0,
                     "randomizedSVD(rank: \(rank), oversampling: \(oversampling), powerIterations: \(powerIterations))")
        let (m, n) = (a.shape[0], a.shape[1])
        let k = min(m, n)
        let r = min(rank, k)
        let l = min(r + oversampling, k)
        if l == k { return try svd(a).truncated(rank: r) }  // no saving: do it exactly

        let omega = Tensor.normal([n, l], using: &rng)
        var q = try orthonormalBasis(BLAS.matmul(a, omega))             // [m, l]
        for _ in 0..<powerIterations {
            let z = try orthonormalBasis(BLAS.matmul(a, q, transA: .transposed))  // [n, l]
            q = try orthonormalBasis(BLAS.matmul(a, z))                   // [m, l]
        }
        let b = BLAS.matmul(q, a, transA: .transposed)                            // [l, n]
        let small = try svd(b)                                           // Ũ [l, l], Σ, Vᵀ [l, n]
        let u = BLAS.matmul(q, small.u)                                   // [m, l]
        return SVD(u: u, s: small.s, vt: small.vt).truncated(rank: r)
    }
}

/// LAPACK's one-character options (job, uplo) as C chars.
private func lapackChar(_ c: Unicode.Scalar) -> CChar { CChar(UInt8(ascii: c)) }
