import Testing
@testable import SubspaceCore

@Suite struct BLASTests {
    /// Every transpose combination, alpha/beta, and leading dimensions larger than the matrices.
    @Test(arguments: [(Transpose.none, Transpose.none), (.none, .transposed), (.transposed, .none), (.transposed, .transposed)])
    func gemmMatchesNaiveProduct(transA: Transpose, transB: Transpose) {
        var rng = RandomStream(seed: 7)
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 9, 33), (64, 48, 80)] {
            let a = Tensor.normal(transA == .none ? [m, k] : [k, m], using: &rng).scalars
            let b = Tensor.normal(transB == .none ? [k, n] : [n, k], using: &rng).scalars
            let c0 = Tensor.normal([m, n], using: &rng).scalars
            let product = naiveProduct(a, b, m: m, n: n, k: k, transA: transA == .transposed, transB: transB == .transposed)

            for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                var c = c0
                a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(transA, transB, m: m, n: n, k: k, alpha: alpha,
                              a: pa.baseAddress!, lda: transA == .none ? k : m,
                              b: pb.baseAddress!, ldb: transB == .none ? n : k,
                              beta: beta, c: pc.baseAddress!, ldc: n)
                }}}
                let expected = zip(product, c0).map { alpha * $0 + beta * $1 }
                expectClose(c, expected, rtol: 1e-4, atol: 1e-4, "gemm \(transA)/\(transB) \(m)x\(n)x\(k) alpha \(alpha) beta \(beta)")
            }
        }
    }

    @Test func gemmOnSlicesWithLeadingDimensions() {
        // C's middle 2×2 block ← A[0:2, 1:4] · B[1:4, 0:2], inside larger row-major buffers.
        let a: [Float] = (0..<12).map(Float.init)          // [3, 4]
        let b: [Float] = (0..<15).map { Float($0) * 0.5 }  // [5, 3]
        var c = [Float](repeating: 0, count: 16)           // [4, 4]
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            BLAS.gemm(.none, .none, m: 2, n: 2, k: 3, a: pa.baseAddress! + 1, lda: 4,
                      b: pb.baseAddress! + 3, ldb: 3, c: pc.baseAddress! + 5, ldc: 4)
        }}}
        for i in 0..<2 { for j in 0..<2 {
            var s: Float = 0
            for p in 0..<3 { s += a[i * 4 + 1 + p] * b[(1 + p) * 3 + j] }
            #expect(c[(1 + i) * 4 + 1 + j] == s)
        }}
        #expect(c[0] == 0 && c[15] == 0)
    }

    @Test func vectorRoutines() {
        let x: [Float] = [3, 4]
        var y: [Float] = [1, 1]
        BLAS.axpy(count: 2, alpha: 2, x: x, y: &y)
        #expect(y == [7, 9])
        BLAS.scal(count: 2, alpha: 0.5, x: &y)
        #expect(y == [3.5, 4.5])
        #expect(BLAS.dot(count: 2, x: x, y: y) == 28.5)
        #expect(BLAS.nrm2(count: 2, x: x) == 5)
        var out: [Float] = [0, 0, 0]
        let a: [Float] = [1, 2, 3, 4, 5, 6]  // [3, 2]
        BLAS.gemv(.none, m: 3, n: 2, a: a, lda: 2, x: x, y: &out)
        #expect(out == [11, 25, 39])
        var outT: [Float] = [0, 0]
        BLAS.gemv(.transposed, m: 3, n: 2, a: a, lda: 2, x: [1, 1, 1], y: &outT)
        #expect(outT == [9, 12])
    }

    @Test func matmulChecksShapes() {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let c = BLAS.matmul(a, a, transB: .transposed)
        #expect(c.shape == [2, 2] && c.scalars == [14, 32, 32, 77])
    }
}
