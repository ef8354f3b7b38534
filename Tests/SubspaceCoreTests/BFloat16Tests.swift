import Foundation
import Testing
@testable import SubspaceCore

@Suite(.serialized) struct BFloat16Tests {
    /// Round to nearest even at the 16-bit cut, exact bf16 values kept, NaN kept, overflow to infinity.
    @Test func roundsToNearestEven() {
        #expect(BFloat16.bits(1) == 0x3F80)
        #expect(BFloat16.bits(-2) == 0xC000)
        #expect(BFloat16.bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)   // tie, even below: down
        #expect(BFloat16.bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)   // tie, odd below: up
        #expect(BFloat16.bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)   // above the tie: up
        #expect(BFloat16.bits(Float(bitPattern: 0x3F80_7FFF)) == 0x3F80)   // below the tie: down
        #expect(BFloat16.bits(.greatestFiniteMagnitude) == 0x7F80)          // rounds past the largest bf16
        #expect(BFloat16.bits(-.infinity) == 0xFF80)
        #expect(BFloat16.float(BFloat16.bits(.nan)).isNaN)
        #expect(BFloat16.float(BFloat16.bits(Float(bitPattern: 0x7F80_0001))).isNaN)   // a NaN whose top half reads as infinity
        #expect(BFloat16.rounded(Float.leastNonzeroMagnitude) == 0)
        var rng = RandomStream(seed: 3)
        for _ in 0..<10_000 {
            let x = rng.nextNormal() * 100
            let r = BFloat16.rounded(x)
            #expect(abs(r - x) <= abs(x) * 0x1p-8, "\(x) → \(r): more than half an ulp of bf16")
            #expect(BFloat16.rounded(r) == r)
        }
    }

    /// The emulated backend equals a float64 product of the bf16-rounded operands to fp32 accumulation error,
    /// for every transpose, alpha/beta and leading dimensions wider than the matrices; and oneDNN (where
    /// this CPU has bf16 instructions) agrees with it.
    @Test(arguments: [(Transpose.none, Transpose.none), (.none, .transposed), (.transposed, .none), (.transposed, .transposed)])
    func gemmMatchesRoundedProduct(transA: Transpose, transB: Transpose) {
        var rng = RandomStream(seed: 11)
        let saved = BF16GEMM.backend
        defer { BF16GEMM.backend = saved }
        for (m, n, k) in [(1, 1, 1), (5, 3, 7), (33, 17, 65)] {
            let (rowsA, colsA) = transA == .none ? (m, k) : (k, m)
            let (rowsB, colsB) = transB == .none ? (k, n) : (n, k)
            let (lda, ldb, ldc) = (colsA + 3, colsB + 2, n + 1)
            let a = (0..<(rowsA * lda)).map { _ in BFloat16.bits(rng.nextNormal()) }
            let b = (0..<(rowsB * ldb)).map { _ in BFloat16.bits(rng.nextNormal()) }
            let c0 = (0..<(m * ldc)).map { _ in rng.nextNormal() }
            let (alpha, beta): (Float, Float) = (0.5, 1)
            func at(_ x: [UInt16], _ ld: Int, _ i: Int, _ j: Int, _ t: Transpose) -> Double {
                Double(BFloat16.float(t == .none ? x[i * ld + j] : x[j * ld + i]))
            }
            var backends: [BF16GEMM.Backend] = [.emulated]
            if BF16GEMM.support.available { backends.append(.oneDNN) }
            for backend in backends {
                BF16GEMM.backend = backend
                var c = c0
                BF16GEMM.gemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                              beta: beta, c: &c, ldc: ldc)
                for i in 0..<m { for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k { s += at(a, lda, i, p, transA) * at(b, ldb, p, j, transB) }
                    let expected = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
                    #expect(abs(Double(c[i * ldc + j]) - expected) <= 1e-5 * (1 + abs(expected)) * Double(k),
                            "\(backend) \(transA)/\(transB) \(m)x\(n)x\(k) [\(i), \(j)]: \(c[i * ldc + j]) vs \(expected)")
                }}
                // Padding columns of C are never written.
                for i in 0..<m { #expect(c[i * ldc + n] == c0[i * ldc + n]) }
            }
        }
    }

    /// Without bf16 instructions, asking for bf16 is refused with a message naming the setting and the
    /// instruction set; SUBSPACE_BF16_EMULATE=1 chooses the emulated backend instead.
    @Test func refusesWithoutHardware() throws {
        let saved = BF16GEMM.backend
        defer { BF16GEMM.backend = saved }
        #expect(try BF16GEMM.require("--precision bf16", environment: ["SUBSPACE_BF16_EMULATE": "1"]) == .emulated)
        if BF16GEMM.support.available {
            #expect(try BF16GEMM.require("--precision bf16", environment: [:]) == .oneDNN)
        } else {
            let error = #expect(throws: BF16Unavailable.self) { try BF16GEMM.require("training.precision bf16", environment: [:]) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains("training.precision bf16") && text.contains(BF16GEMM.support.isa) && text.contains("AVX-512 BF16"), "\(text)")
        }
    }
}
