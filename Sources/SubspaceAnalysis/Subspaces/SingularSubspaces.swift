import SubspaceCore

/// The top-k left and right singular subspaces of a weight W [m, n] = U Σ Vᵀ.
public struct SingularBasis: Sendable {
    /// [m, k], orthonormal columns: the leading left singular vectors.
    public var u: Tensor
    /// [n, k], orthonormal columns: the leading right singular vectors (V, not Vᵀ).
    public var v: Tensor
    /// The k leading singular values, descending.
    public var s: [Float]

    public var k: Int { s.count }

    /// The leading `k` singular vectors of `w`: an exact thin SVD (LAPACK `sgesdd`) truncated to k, or a
    /// randomized one (Halko–Martinsson–Tropp with `oversampling` extra probes and `powerIterations`
    /// rounds, drawn from `rng`).
    public static func top(_ w: Tensor, k: Int, method: SVDMethod, oversampling: Int = 10, powerIterations: Int = 2,
                           rng: inout RandomStream) throws -> SingularBasis {
        precondition(w.rank == 2 && k >= 1 && k <= min(w.shape[0], w.shape[1]), "top-\(k) subspaces of \(w.shape)")
        let svd: SVD
        switch method {
        case .full: svd = try LAPACK.svd(w).truncated(rank: k)
        case .randomized:
            svd = try LAPACK.randomizedSVD(w, rank: k, oversampling: oversampling, powerIterations: powerIterations, using: &rng)
        }
        return SingularBasis(u: svd.u, v: svd.vt.transposed(), s: svd.s)
    }
}

/// Identifies coordinates of a source space with those of a target space of possibly another dimension:
/// blocks of `count` consecutive coordinates, `sourceStart…` ↦ `targetStart…`; everything else maps to 0.
/// With equal dimensions it is the identity. For a fused q|k|v output it is one block per role, so q's
/// rows meet q's rows even when the widths differ.
public struct CoordinateEmbedding: Sendable, Equatable {
    public struct Block: Sendable, Equatable {
        public var sourceStart: Int
        public var targetStart: Int
        public var count: Int
    }

    public var sourceDimension: Int
    public var targetDimension: Int
    public var blocks: [Block]

    public init(sourceDimension: Int, targetDimension: Int, blocks: [Block]) {
        precondition(blocks.allSatisfy { $0.sourceStart + $0.count <= sourceDimension && $0.targetStart + $0.count <= targetDimension },
                     "embedding blocks outside \(sourceDimension) → \(targetDimension)")
        self.sourceDimension = sourceDimension
        self.targetDimension = targetDimension
        self.blocks = blocks
    }

    /// The leading min(d_s, d_t) coordinates shared.
    public static func leading(_ sourceDimension: Int, _ targetDimension: Int) -> CoordinateEmbedding {
        CoordinateEmbedding(sourceDimension: sourceDimension, targetDimension: targetDimension,
                            blocks: [Block(sourceStart: 0, targetStart: 0, count: min(sourceDimension, targetDimension))])
    }

    public var isIdentity: Bool {
        sourceDimension == targetDimension && blocks == [Block(sourceStart: 0, targetStart: 0, count: sourceDimension)]
    }

    /// E·X for X [d_s, c]: rows moved to their target coordinates, [d_t, c].
    public func apply(_ x: Tensor) -> Tensor {
        precondition(x.rank == 2 && x.shape[0] == sourceDimension, "embedding of \(sourceDimension) rows applied to \(x.shape)")
        let c = x.shape[1]
        var out = Tensor(zeros: [targetDimension, c])
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for b in blocks {
                    for i in 0..<b.count {
                        for j in 0..<c { dst[(b.targetStart + i) * c + j] = src[(b.sourceStart + i) * c + j] }
                    }
                }
            }
        }
        return out
    }
}

/// Similarity of two k-dimensional subspaces, with the level two independent random subspaces reach.
public enum SubspaceSimilarity {
    /// φ = ‖U_tᵀ·E·U_s‖²_F / k for U_s [d_s, k], U_t [d_t, k] with orthonormal columns: 1 when the
    /// subspaces coincide (under E), 0 when orthogonal. With E the identity this is ‖U_sᵀU_t‖²_F / k,
    /// the mean squared cosine of the principal angles.
    public static func phi(source: Tensor, target: Tensor, embedding: CoordinateEmbedding) -> Double {
        precondition(source.shape[1] == target.shape[1], "subspaces of dimension \(source.shape[1]) and \(target.shape[1])")
        let overlap = BLAS.matmul(target, embedding.apply(source), transA: .transposed)  // [k, k]
        return overlap.sumOfSquares / Double(source.shape[1])
    }

    /// E[φ] for a uniformly random k-dimensional subspace of the target space and any fixed source
    /// subspace whose embedded vectors keep their length: k / d_t; when the target is the smaller space
    /// the embedding also keeps only d_t/d_s of a random source vector's length², so k / max(d_s, d_t).
    public static func chance(k: Int, sourceDimension: Int, targetDimension: Int) -> Double {
        Double(k) / Double(max(sourceDimension, targetDimension))
    }
}

/// The projections that carry a LoRA update ΔW_s = B_s·A_s (B [m, q], A [q, n]) to a target base, on the
/// factors, so the inner dimension q (the rank) is kept.
public enum LoRAProjection {
    /// Equal shapes (LoRA-X): ΔW_t = U_tU_tᵀ·ΔW_s·V_tV_tᵀ, as B_t = U_t(U_tᵀB_s), A_t = (A_sV_t)V_tᵀ.
    public static func project(b: Tensor, a: Tensor, target: SingularBasis) -> (b: Tensor, a: Tensor) {
        let bt = BLAS.matmul(target.u, BLAS.matmul(target.u, b, transA: .transposed))   // [m, q]
        let at = BLAS.matmul(BLAS.matmul(a, target.v), target.v, transB: .transposed)   // [q, n]
        return (bt, at)
    }

    /// Different shapes. The two singular bases live in different spaces, related only by the coordinate
    /// embeddings E_out, E_in (shared leading coordinates, role by role). The source basis is carried into
    /// the target's subspace by the least-squares map M_U = argmin_M ‖U_t·M − E_out·U_s‖_F = U_tᵀE_outU_s
    /// (k×k; a full matrix, not a pairing of the i-th vectors, whose signs and order are arbitrary), and
    /// likewise M_V = V_tᵀE_inV_s. The update, written in the source basis, is re-expressed in the target
    /// basis: ΔW_t = U_t·M_U·(U_sᵀΔW_sV_s)·M_Vᵀ·V_tᵀ, on the factors
    /// B_t = U_t·M_U·(U_sᵀB_s) [m_t, q] and A_t = (A_sV_s)·M_Vᵀ·V_tᵀ [q, n_t].
    /// When the target's top-k subspaces are the embedded source ones (U_t = E_outU_s·R, R orthogonal) and
    /// ΔW_s lies in the source's, this is exactly E_out·ΔW_s·E_inᵀ.
    public static func map(b: Tensor, a: Tensor, source: SingularBasis, target: SingularBasis,
                           outEmbedding: CoordinateEmbedding, inEmbedding: CoordinateEmbedding) -> (b: Tensor, a: Tensor) {
        let mu = BLAS.matmul(target.u, outEmbedding.apply(source.u), transA: .transposed)  // [k, k]
        let mv = BLAS.matmul(target.v, inEmbedding.apply(source.v), transA: .transposed)   // [k, k]
        let coordinatesB = BLAS.matmul(source.u, b, transA: .transposed)                   // [k, q]
        let coordinatesA = BLAS.matmul(a, source.v)                                         // [q, k]
        let bt = BLAS.matmul(target.u, BLAS.matmul(mu, coordinatesB))                      // [m_t, q]
        let at = BLAS.matmul(BLAS.matmul(coordinatesA, mv, transB: .transposed), target.v, transB: .transposed)  // [q, n_t]
        return (bt, at)
    }

    /// The best rank-r approximation of B·A (B [m, q], A [q, n], q > r) as factors B' [m, r], A' [r, n],
    /// through QR of both factors and the SVD of the small q×q core; also the fraction of ‖B·A‖²_F kept.
    /// Used when several source modules (llama's q, k and v, each rank r) feed one target module (GPT-2's
    /// c_attn), whose update then has rank up to 3r.
    public static func truncate(b: Tensor, a: Tensor, rank r: Int) throws -> (b: Tensor, a: Tensor, energyKept: Double) {
        let q = b.shape[1]
        precondition(a.shape[0] == q && r >= 1, "truncate of \(b.shape)·\(a.shape) to rank \(r)")
        if q <= r {
            return (pad(b, columns: r), padRows(a, rows: r), 1)
        }
        let (qb, rb) = try LAPACK.qr(b)                  // [m, q'], [q', q]
        let (qa, ra) = try LAPACK.qr(a.transposed())     // [n, q''], [q'', q]
        let core = BLAS.matmul(rb, ra, transB: .transposed)   // [q', q'']
        let svd = try LAPACK.svd(core)
        let total = svd.s.reduce(0.0) { $0 + Double($1) * Double($1) }
        let kept = min(r, svd.s.count)
        let keptEnergy = svd.s.prefix(kept).reduce(0.0) { $0 + Double($1) * Double($1) }
        let roots = svd.s.prefix(kept).map { max($0, 0).squareRoot() }
        var x = svd.u.leadingColumns(kept)                     // [q', kept]
        var yt = Tensor(shape: [kept, svd.vt.shape[1]], values: Array(svd.vt.scalars.prefix(kept * svd.vt.shape[1])))
        let (xRows, w) = (x.shape[0], yt.shape[1])
        x.withUnsafeMutableBufferPointer { p in
            for i in 0..<xRows { for j in 0..<kept { p[i * kept + j] *= roots[j] } }
        }
        yt.withUnsafeMutableBufferPointer { p in
            for j in 0..<kept { for c in 0..<w { p[j * w + c] *= roots[j] } }
        }
        let newB = BLAS.matmul(qb, x)                                       // [m, kept]
        let newA = BLAS.matmul(yt, qa, transB: .transposed)                 // [kept, n]
        return (pad(newB, columns: r), padRows(newA, rows: r), total > 0 ? keptEnergy / total : 1)
    }

    /// ‖B·A‖²_F = Σ_ij (BᵀB)_ij (AAᵀ)_ij, without forming B·A.
    public static func squaredNorm(b: Tensor, a: Tensor) -> Double {
        let gb = BLAS.matmul(b, b, transA: .transposed)   // [q, q]
        let ga = BLAS.matmul(a, a, transB: .transposed)   // [q, q]
        return gb.withUnsafeBufferPointer { x in
            ga.withUnsafeBufferPointer { y in (0..<x.count).reduce(0.0) { $0 + Double(x[$1]) * Double(y[$1]) } }
        }
    }

    static func pad(_ t: Tensor, columns: Int) -> Tensor {
        let (rows, cols) = (t.shape[0], t.shape[1])
        if cols == columns { return t }
        var out = Tensor(zeros: [rows, columns])
        t.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                for i in 0..<rows { for j in 0..<min(cols, columns) { d[i * columns + j] = s[i * cols + j] } }
            }
        }
        return out
    }

    static func padRows(_ t: Tensor, rows: Int) -> Tensor {
        let cols = t.shape[1]
        if t.shape[0] == rows { return t }
        var values = [Float](repeating: 0, count: rows * cols)
        let n = min(rows, t.shape[0]) * cols
        t.withUnsafeBufferPointer { s in for i in 0..<n { values[i] = s[i] } }
        return Tensor(shape: [rows, cols], values: values)
    }
}
