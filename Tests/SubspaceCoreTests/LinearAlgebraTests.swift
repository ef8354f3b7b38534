import Foundation
import Testing
@testable import SubspaceCore

@Suite struct LinearAlgebraTests {
    @Test(arguments: [(40, 40), (60, 25), (25, 60), (1, 9), (128, 96)])
    func svdReconstructsWithOrthonormalFactors(m: Int, n: Int) throws {
        var rng = RandomStream(seed: UInt64(m * 1000 + n))
        let a = Tensor.normal([m, n], using: &rng)
        let svd = try LAPACK.svd(a)
        let k = min(m, n)
        #expect(svd.u.shape == [m, k] && svd.vt.shape == [k, n] && svd.s.count == k)
        let relative = (a - svd.reconstruct()).norm / a.norm
        #expect(relative < 1e-5, "‖A − UΣVᵀ‖/‖A‖ = \(relative)")
        #expect(orthonormalityError(columnsOf: svd.u) < 1e-5)
        #expect(orthonormalityError(columnsOf: svd.vt.transposed()) < 1e-5)
        #expect(zip(svd.s, svd.s.dropFirst()).allSatisfy { $0 >= $1 } && svd.s.allSatisfy { $0 >= 0 })
        let valuesOnly = try LAPACK.singularValues(a)
        expectClose(valuesOnly, svd.s, rtol: 1e-5, atol: 1e-5, "singular values alone")
    }

    @Test func svdRecoversKnownSpectrum() throws {
        let s: [Float] = [10, 5, 2, 1, 0.5, 0.1]
        let a = try matrix(withSingularValues: s, m: 50, n: 30, seed: 3)
        let svd = try LAPACK.svd(a)
        expectClose(Array(svd.s.prefix(6)), s, rtol: 1e-4, atol: 1e-5, "spectrum")
        #expect(svd.s.dropFirst(6).allSatisfy { $0 < 1e-4 })
        // Rank-3 truncation error is the tail of the spectrum (Eckart–Young).
        let err = (a - svd.reconstruct(rank: 3)).norm
        let tail = (s[3...].map { $0 * $0 }.reduce(0, +)).squareRoot()
        #expect(abs(err - tail) < 1e-4)
    }

    @Test func randomizedSVDFindsTopSingularValues() throws {
        // Decaying spectrum σ_i = 0.8^i, 200×120, rank 10.
        let s = (0..<120).map { Float(pow(0.8, Double($0))) }
        let a = try matrix(withSingularValues: s, m: 200, n: 120, seed: 11)
        var rng = RandomStream(seed: 5)
        let r = try LAPACK.randomizedSVD(a, rank: 10, oversampling: 10, powerIterations: 2, using: &rng)
        #expect(r.u.shape == [200, 10] && r.vt.shape == [10, 120] && r.s.count == 10)
        for i in 0..<10 { #expect(abs(r.s[i] - s[i]) / s[i] < 1e-3, "σ_\(i): \(r.s[i]) vs \(s[i])") }
        #expect(orthonormalityError(columnsOf: r.u) < 1e-4)
        #expect(orthonormalityError(columnsOf: r.vt.transposed()) < 1e-4)
        // Near-optimal: the rank-10 error is close to the exact truncation's.
        let exact = try LAPACK.svd(a)
        let optimal = (a - exact.reconstruct(rank: 10)).norm
        let achieved = (a - r.reconstruct()).norm
        #expect(achieved < optimal * 1.01, "randomized error \(achieved) vs optimal \(optimal)")
    }

    @Test func randomizedSVDIsReproducibleForAStream() throws {
        var rng = RandomStream(seed: 1)
        let a = Tensor.normal([80, 60], using: &rng)
        var r1 = RandomStream(seed: 9), r2 = RandomStream(seed: 9)
        let x = try LAPACK.randomizedSVD(a, rank: 5, using: &r1)
        let y = try LAPACK.randomizedSVD(a, rank: 5, using: &r2)
        #expect(x.s == y.s && x.u == y.u)
    }

    @Test func symmetricEigenIdentities() throws {
        var rng = RandomStream(seed: 21)
        let b = Tensor.normal([30, 30], using: &rng)
        let a = b + b.transposed()
        let (values, v) = try LAPACK.symmetricEigen(a)
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(orthonormalityError(columnsOf: v) < 1e-5)
        // A·V = V·diag(λ)
        let av = BLAS.matmul(a, v)
        var vl = v
        vl.withUnsafeMutableBufferPointer { p in for i in 0..<30 { for j in 0..<30 { p[i * 30 + j] *= values[j] } } }
        #expect((av - vl).norm / a.norm < 1e-5)
    }

    @Test(arguments: [(50, 20), (20, 50), (16, 16)])
    func qrIdentities(m: Int, n: Int) throws {
        var rng = RandomStream(seed: 33)
        let a = Tensor.normal([m, n], using: &rng)
        let (q, r) = try LAPACK.qr(a)
        let k = min(m, n)
        #expect(q.shape == [m, k] && r.shape == [k, n])
        #expect(orthonormalityError(columnsOf: q) < 1e-5)
        for i in 0..<k { for j in 0..<min(i, n) { #expect(r[i, j] == 0) } }
        #expect((a - BLAS.matmul(q, r)).norm / a.norm < 1e-5)
    }

    @Test func lapackErrorsAreTyped() {
        let bad = Tensor(shape: [3, 3], values: [1, .nan, 0, 0, 1, 0, 0, 0, 1])
        // NaN input: LAPACK either reports failure or returns NaN; it must never crash.
        do {
            let svd = try LAPACK.svd(bad)
            #expect(svd.s.contains { $0.isNaN } || svd.s.count == 3)
        } catch {
            #expect(error.description.contains("sgesvd") || error.description.contains("sgesdd"))
        }
        let e = LAPACKError(routine: "ssyevd", info: -3, shape: [4, 4])
        #expect(e.description.contains("argument 3") && e.description.contains("ssyevd"))
    }
}
