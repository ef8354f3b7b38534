import Foundation
import Testing
@testable import SubspaceCore

/// `../shared/fixtures` beside the checkout (CI has it there too), or `$SUBSPACE_FIXTURES`.
func fixturesFolder() -> String {
    if let env = ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"] { return env }
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
}

/// A fresh temporary folder, removed by the caller's `defer`.
func temporaryFolder() -> String {
    let path = NSTemporaryDirectory() + "subspace-tests-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The worst elementwise disagreement between two tensors, with where it is.
struct Mismatch: CustomStringConvertible {
    var index = -1, actual: Float = 0, expected: Float = 0, excess: Float = 0
    var description: String { "worst at flat index \(index): \(actual) vs expected \(expected)" }
}

/// Passes when |a − e| ≤ atol + rtol·|e| everywhere; otherwise records the worst element.
func expectClose(_ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6,
                 _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what): \(actual.count) values vs \(expected.count)", sourceLocation: sourceLocation)
    var worst = Mismatch()
    for i in 0..<min(actual.count, expected.count) {
        let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
        if excess > worst.excess || actual[i].isNaN != expected[i].isNaN { worst = Mismatch(index: i, actual: actual[i], expected: expected[i], excess: excess.isNaN ? .infinity : excess) }
    }
    #expect(worst.index < 0, "\(what): \(worst)", sourceLocation: sourceLocation)
}

/// Naive triple loop: the reference for gemm.
func naiveProduct(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var sum: Double = 0
            for p in 0..<k {
                let av = transA ? a[p * m + i] : a[i * k + p]
                let bv = transB ? b[j * k + p] : b[p * n + j]
                sum += Double(av) * Double(bv)
            }
            c[i * n + j] = Float(sum)
        }
    }
    return c
}

/// Largest |QᵀQ − I| over the columns of a 2-D tensor.
func orthonormalityError(columnsOf q: Tensor) -> Float {
    let gram = BLAS.matmul(q, q, transA: .transposed)
    var worst: Float = 0
    for i in 0..<gram.shape[0] { for j in 0..<gram.shape[1] { worst = max(worst, abs(gram[i, j] - (i == j ? 1 : 0))) } }
    return worst
}

/// A matrix with prescribed singular values: U · diag(s) · Vᵀ for random orthonormal U, V.
func matrix(withSingularValues s: [Float], m: Int, n: Int, seed: UInt64) throws -> Tensor {
    var rng = RandomStream(seed: seed)
    let u = try LAPACK.qr(Tensor.normal([m, s.count], using: &rng)).q
    let v = try LAPACK.qr(Tensor.normal([n, s.count], using: &rng)).q
    var us = u
    us.withUnsafeMutableBufferPointer { p in
        for i in 0..<m { for j in 0..<s.count { p[i * s.count + j] *= s[j] } }
    }
    return BLAS.matmul(us, v, transB: .transposed)
}
