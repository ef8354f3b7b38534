import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// Orthogonal Q/K initialisation: orthonormal rows or columns to 1e-5 for square, wide, tall and
/// grouped-query shapes; Haar signs; reproducible from the seed alone; W_q = W_k when asked.
@Suite struct OrthogonalInitTests {
    /// Largest |(W Wᵀ or Wᵀ W) − gain²·I| over the smaller Gram matrix.
    static func orthonormalityError(_ w: Tensor, gain: Float = 1) -> Float {
        let (rows, cols) = (w.shape[0], w.shape[1])
        let gram = rows <= cols ? BLAS.matmul(w, w, transB: .transposed) : BLAS.matmul(w, w, transA: .transposed)
        let n = min(rows, cols)
        var worst: Float = 0
        for i in 0..<n { for j in 0..<n { worst = max(worst, abs(gram[i, j] - (i == j ? gain * gain : 0))) } }
        return worst
    }

    @Test(arguments: [(64, 64), (32, 96), (96, 32), (1, 16), (16, 1), (48, 128)])
    func orthonormalForEveryShape(rows: Int, cols: Int) throws {
        var rng = RandomStream(seed: 3)
        let w = try OrthogonalInit.matrix(rows: rows, cols: cols, using: &rng)
        #expect(w.shape == [rows, cols])
        let error = Self.orthonormalityError(w)
        #expect(error < 1e-5, "[\(rows), \(cols)]: max |Gram − I| = \(error)")
    }

    @Test func gainScales() throws {
        var rng = RandomStream(seed: 4)
        let w = try OrthogonalInit.matrix(rows: 24, cols: 40, gain: 0.5, using: &rng)
        let error = Self.orthonormalityError(w, gain: 0.5)
        #expect(error < 1e-5, "max |W Wᵀ − 0.25 I| = \(error)")
    }

    /// Column j of Q is a positive combination of G's first j columns: column 0 points along G's.
    /// Without the sign fix LAPACK's Householder QR makes it point the other way.
    @Test func signsFollowTheGaussian() throws {
        var rng = RandomStream(seed: 5)
        for _ in 0..<20 {
            let g = Tensor.normal([6, 4], using: &rng)
            let q = try OrthogonalInit.orthonormalize(g)
            var dot: Float = 0
            for i in 0..<6 { dot += q[i, 0] * g[i, 0] }
            #expect(dot > 0)
            // R = Qᵀ G is upper triangular with a positive diagonal.
            let r = BLAS.matmul(q, g, transA: .transposed)
            for j in 0..<4 { #expect(r[j, j] > 0) }
        }
    }

    /// Haar: over many draws Q[0, 0] has mean ≈ 0 and the determinant of a square Q is ±1 about equally.
    @Test func unbiasedOverDraws() throws {
        var rng = RandomStream(seed: 6)
        var sum: Float = 0, positive = 0
        let draws = 2000
        for _ in 0..<draws {
            let q = try OrthogonalInit.matrix(rows: 2, cols: 2, using: &rng)
            sum += q[0, 0]
            if q[0, 0] * q[1, 1] - q[0, 1] * q[1, 0] > 0 { positive += 1 }
        }
        #expect(abs(sum / Float(draws)) < 0.05, "mean of Q[0,0] = \(sum / Float(draws))")
        #expect(abs(Double(positive) / Double(draws) - 0.5) < 0.05, "share with det +1: \(Double(positive) / Double(draws))")
    }

    static let gpt2 = ModelConfig(family: .gpt2, vocabularySize: 64, hiddenSize: 32, layerCount: 3, headCount: 4, maxPositions: 16)
    static let gqa = ModelConfig(family: .llama, vocabularySize: 64, hiddenSize: 32, layerCount: 2, headCount: 4,
                                 keyValueHeadCount: 2, intermediateSize: 48, maxPositions: 16)
    /// Head width 16 × 4 heads = 64 > hidden 32: W_q is tall (orthonormal columns), W_k [32, 32] square.
    static let tallQuery = ModelConfig(family: .qwen2, vocabularySize: 64, hiddenSize: 32, layerCount: 2, headCount: 4,
                                       keyValueHeadCount: 2, headDimension: 16, intermediateSize: 48, maxPositions: 16)

    static func model(_ config: ModelConfig, seed: UInt64 = 1, options: OrthogonalInit.Options = .init()) throws -> Transformer {
        let m = Transformer(config: config)
        m.initialize(seed: seed)
        try OrthogonalInit.apply(to: m, seed: seed, options: options)
        return m
    }

    @Test func modelProjectionsOrthonormalIncludingGQA() throws {
        for config in [Self.gpt2, Self.gqa, Self.tallQuery] {
            let m = try Self.model(config)
            for l in 0..<config.layerCount {
                let wq = m.tensor(.layer(l, .q)), wk = m.tensor(.layer(l, .k))
                #expect(wq.shape == [config.queryWidth, config.hiddenSize])
                #expect(wk.shape == [config.keyValueWidth, config.hiddenSize])
                #expect(Self.orthonormalityError(wq) < 1e-5, "layer \(l) W_q")
                #expect(Self.orthonormalityError(wk) < 1e-5, "layer \(l) W_k (\(wk.shape))")
                #expect(wq.scalars != Array(wk.scalars.prefix(wq.count)), "independent draws differ")
            }
        }
        // Layers draw from their own streams.
        let m = try Self.model(Self.gpt2)
        #expect(m.tensor(.layer(0, .q)).scalars != m.tensor(.layer(1, .q)).scalars)
    }

    @Test func reproducibleFromTheSeed() throws {
        let a = try Self.model(Self.gpt2, seed: 7), b = try Self.model(Self.gpt2, seed: 7), c = try Self.model(Self.gpt2, seed: 8)
        for l in 0..<Self.gpt2.layerCount {
            for t in [LayerTensor.q, .k] {
                #expect(a.tensor(.layer(l, t)).scalars == b.tensor(.layer(l, t)).scalars)
                #expect(a.tensor(.layer(l, t)).scalars != c.tensor(.layer(l, t)).scalars)
            }
        }
        // A layer's draw depends on the seed and the layer only: the same in a 2-layer model.
        var two = Self.gpt2
        two.layerCount = 2
        let d = try Self.model(two, seed: 7)
        #expect(d.tensor(.layer(1, .k)).scalars == a.tensor(.layer(1, .k)).scalars)
        // Other tensors keep the usual initialisation.
        let plain = Transformer(config: Self.gpt2)
        plain.initialize(seed: 7)
        #expect(plain.tensor(.layer(0, .v)).scalars == a.tensor(.layer(0, .v)).scalars)
        #expect(plain.tensor(.layer(0, .qBias)).scalars == a.tensor(.layer(0, .qBias)).scalars)
    }

    @Test func sharedMakesKeyEqualQuery() throws {
        let m = try Self.model(Self.gpt2, options: .init(pairing: .shared, gain: 2))
        for l in 0..<Self.gpt2.layerCount {
            #expect(m.tensor(.layer(l, .q)).scalars == m.tensor(.layer(l, .k)).scalars)
            #expect(Self.orthonormalityError(m.tensor(.layer(l, .q)), gain: 2) < 1e-5 * 4)
        }
    }

    @Test func sharedRefusesGroupedQueryShapes() throws {
        let m = Transformer(config: Self.gqa)
        m.initialize(seed: 1)
        let before = m.tensor(.layer(0, .q)).scalars
        #expect(throws: OrthogonalInit.Failure.sharedShapesDiffer(layer: 0, query: [32, 32], key: [16, 32])) {
            try OrthogonalInit.apply(to: m, seed: 1, options: .init(pairing: .shared))
        }
        #expect(m.tensor(.layer(0, .q)).scalars == before, "nothing is written when the options are refused")
        #expect(throws: OrthogonalInit.Failure.invalidGain(0)) { try OrthogonalInit.apply(to: m, seed: 1, options: .init(gain: 0)) }
    }
}
