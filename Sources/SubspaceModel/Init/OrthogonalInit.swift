import SubspaceCore

/// Orthogonal initialisation of the attention's query and key projections (the Q/K freeze study).
///
/// A weight W [rows, cols] becomes `gain ·` a matrix with orthonormal rows (rows ≤ cols: W Wᵀ = I) or
/// orthonormal columns (rows ≥ cols: Wᵀ W = I), drawn from the uniform (Haar) distribution on those
/// matrices: the Q of the QR of a Gaussian matrix G [max, min], with each column of Q multiplied by the
/// sign of R's diagonal entry, so that Q = G R⁻¹ with R's diagonal positive, which is unique and
/// rotation-equivariant (Mezzadri, "How to generate random matrices from the classical compact groups",
/// 2007). Without the sign fix LAPACK's Householder convention biases Q (its first column always points
/// against G's).
///
/// With grouped-query attention the key projection [kvHeads·D, C] is wider than tall, so it gets
/// orthonormal rows, while the query projection [heads·D, C] is square for gpt2.
///
/// Draws are seeded per layer and projection from `RandomStream(seed:).split(…)`, so the weights are a
/// function of the seed alone, the same on every rank whatever the world size.
public enum OrthogonalInit {
    /// How W_k relates to W_q.
    public enum Pairing: String, Sendable, CaseIterable {
        /// W_q and W_k drawn independently.
        case independent
        /// W_k = W_q (only when their shapes agree: no grouped-query attention).
        case shared
    }

    public struct Options: Sendable, Equatable {
        public var pairing: Pairing
        /// Scale applied to the orthonormal matrix.
        public var gain: Float

        public init(pairing: Pairing = .independent, gain: Float = 1) {
            self.pairing = pairing
            self.gain = gain
        }
    }

    /// The problems a caller can cause: shapes that cannot be shared, a bad gain.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// `shared` asked for where W_q and W_k differ in shape (grouped-query attention).
        case sharedShapesDiffer(layer: Int, query: [Int], key: [Int])
        case invalidGain(Float)
        case lapack(LAPACKError)

        public var description: String {
            switch self {
            case .sharedShapesDiffer(let l, let q, let k):
                "orthogonal Q/K init: W_q = W_k needs equal shapes, but layer \(l) has W_q \(q) and W_k \(k) (grouped-query attention); use independent draws"
            case .invalidGain(let g): "orthogonal Q/K init: gain must be finite and positive, got \(g)"
            case .lapack(let e): "orthogonal Q/K init: \(e)"
            }
        }
    }

    /// Stream ids under the seed: far from the small per-tensor ids `Transformer.initialize` splits off,
    /// so the orthogonal draws are independent of the usual initialisation.
    static let domain: UInt64 = 0x5153_4F52_5448_4F47  // "QSORTHOG"

    /// The stream for layer `layer`'s projection (0: query, 1: key).
    public static func stream(seed: UInt64, layer: Int, projection: UInt64) -> RandomStream {
        RandomStream(seed: seed).split(domain).split(UInt64(layer)).split(projection)
    }

    /// A Haar-distributed [rows, cols] matrix with orthonormal rows or columns (whichever the shape
    /// allows), times `gain`, drawn from `rng`.
    public static func matrix(rows: Int, cols: Int, gain: Float = 1, using rng: inout RandomStream) throws(Failure) -> Tensor {
        precondition(rows >= 1 && cols >= 1, "orthogonal matrix of shape [\(rows), \(cols)]")
        let gaussian = Tensor.normal([max(rows, cols), min(rows, cols)], using: &rng)
        var q = try orthonormalize(gaussian)
        if rows < cols { q = q.transposed() }
        if gain != 1 { q.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] *= gain } } }
        return q
    }

    /// The Q factor of a tall matrix G [m, n] (m ≥ n) with its signs fixed so that R's diagonal is
    /// positive: Q [m, n] with orthonormal columns, column j of Q a positive combination of G's first j
    /// columns. For a Gaussian G the result is Haar-distributed.
    public static func orthonormalize(_ g: Tensor) throws(Failure) -> Tensor {
        precondition(g.rank == 2 && g.shape[0] >= g.shape[1], "orthonormalize needs a tall matrix, got \(g.shape)")
        let factors: (q: Tensor, r: Tensor)
        do { factors = try LAPACK.qr(g) } catch { throw .lapack(error) }
        var q = factors.q
        let (m, n) = (g.shape[0], g.shape[1])
        let signs = (0..<n).map { j -> Float in factors.r[j, j] < 0 ? -1 : 1 }
        q.withUnsafeMutableBufferPointer { p in
            for i in 0..<m { for j in 0..<n where signs[j] < 0 { p[i * n + j] = -p[i * n + j] } }
        }
        return q
    }

    /// Overwrites every layer's W_q and W_k with orthonormal draws (biases are left as they are).
    public static func apply(to model: Transformer, seed: UInt64, options: Options = Options()) throws(Failure) {
        guard options.gain.isFinite, options.gain > 0 else { throw .invalidGain(options.gain) }
        let layout = model.layout
        for l in 0..<model.config.layerCount {
            let qShape = layout[.layer(l, .q)].shape, kShape = layout[.layer(l, .k)].shape
            if options.pairing == .shared, qShape != kShape {
                throw .sharedShapesDiffer(layer: l, query: qShape, key: kShape)
            }
        }
        for l in 0..<model.config.layerCount {
            let qShape = layout[.layer(l, .q)].shape, kShape = layout[.layer(l, .k)].shape
            var qStream = stream(seed: seed, layer: l, projection: 0)
            let wq = try matrix(rows: qShape[0], cols: qShape[1], gain: options.gain, using: &qStream)
            model.setTensor(.layer(l, .q), wq)
            switch options.pairing {
            case .shared:
                model.setTensor(.layer(l, .k), wq)
            case .independent:
                var kStream = stream(seed: seed, layer: l, projection: 1)
                model.setTensor(.layer(l, .k), try matrix(rows: kShape[0], cols: kShape[1], gain: options.gain, using: &kStream))
            }
        }
    }

    /// Every layer's W_q and W_k: the tensors the `ortho-frozen` mode freezes.
    public static func roles(layerCount: Int) -> [TensorRole] {
        (0..<layerCount).flatMap { [TensorRole.layer($0, .q), .layer($0, .k)] }
    }
}
