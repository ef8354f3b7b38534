import Foundation
import SubspaceCore
import Testing
@testable import SubspaceModel

/// The vector forms of the elementwise kernels against their scalar forms and against double references.
@Suite struct FastMathTests {
    /// Inputs over exp's whole clamped range and beyond, plus the special values.
    static let inputs: [Float] = {
        var rng = RandomStream(seed: 11)
        var x = (0..<20_000).map { _ in Float.random(in: -100...100, using: &rng) }
        x += (0..<2_000).map { _ in Float.random(in: -1...1, using: &rng) }
        x += [0, -0.0, -87.3, 88.3, -87.4, 88.4, .infinity, -.infinity, .leastNonzeroMagnitude, 1e-30, -1e-30]
        return x
    }()

    @Test func vectorExpEqualsScalarExpBitForBit() {
        let x = Self.inputs
        var mismatches = 0
        var i = 0
        while i + 8 <= x.count {
            let v = FastMath.exp(SIMD8<Float>(x[i..<(i + 8)]))
            for lane in 0..<8 where v[lane].bitPattern != FastMath.exp(x[i + lane]).bitPattern { mismatches += 1 }
            i += 8
        }
        #expect(mismatches == 0)
    }

    @Test func scalarExpIsWithinTwoUlps() {
        for x in Self.inputs where x > -87 && x < 88 {
            let reference = Foundation.exp(Double(x))
            let error = abs(Double(FastMath.exp(x)) - reference) / reference
            #expect(error <= 2.5e-7, "exp(\(x))")
        }
    }

    /// Row reductions with every tail length 0–20 and a long row, against double sums.
    @Test func tileReductionsMatchDoubleReferences() {
        var rng = RandomStream(seed: 3)
        for n in Array(0...20) + [257, 1000] {
            let x = (0..<n).map { _ in Float.random(in: -4...4, using: &rng) }
            let y = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
            let z = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
            let (xd, yd, zd) = (x.map(Double.init), y.map(Double.init), z.map(Double.init))
            func close(_ a: Float, _ b: Double, _ what: String) {
                #expect(abs(Double(a) - b) <= 1e-5 * max(1, abs(b)), "\(what) n=\(n): \(a) vs \(b)")
            }
            let shift: Float = 1.5, mean: Float = 0.25, rstd: Float = 1.7
            close(TileMath.sumExpShifted(x, n, by: shift), xd.reduce(0) { $0 + Foundation.exp($1 - Double(shift)) }, "Σ exp")
            close(TileMath.sumOfSquaredDeviations(x, n, from: mean), xd.reduce(0) { $0 + ($1 - Double(mean)) * ($1 - Double(mean)) }, "Σ (x − m)²")
            close(TileMath.dot3(x, y, z, n), (0..<n).reduce(0) { $0 + xd[$1] * yd[$1] * zd[$1] }, "Σ xyz")
            close(TileMath.layerNormBackwardDot(y, z, x, n, mean: mean, rstd: rstd),
                  (0..<n).reduce(0) { $0 + yd[$1] * zd[$1] * (xd[$1] - Double(mean)) * Double(rstd) }, "Σ d·w·x̂")
            if n > 0 { #expect(TileMath.max(x, n) == x.max()!) }
            // The out-of-place, scaled form equals the in-place one times the scale, element by element.
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { TileMath.expShifted($0.baseAddress!, n, by: shift) }
            var scaled = [Float](repeating: .nan, count: n)
            scaled.withUnsafeMutableBufferPointer { TileMath.expShifted($0.baseAddress!, x, n, by: shift, scale: 0.5) }
            #expect(scaled == inPlace.map { $0 * 0.5 })
            #expect(inPlace == x.map { FastMath.exp($0 - shift) })
        }
    }
}
