/// Inlinable exp and friends for the elementwise kernels. libm's expf/tanhf are out-of-line calls that
/// cost ~20 ns each and dominated GELU and softmax; these are plain arithmetic the compiler inlines and
/// can vectorise.
///
/// exp is Cephes' expf: x = n·ln2 + r with ln2 split in two for exactness, a degree-6 polynomial for e^r on
/// |r| ≤ ln2/2, and 2^n built in the exponent bits; n is rounded with the 1.5·2^23 trick (no SSE4.1
/// rounding instruction on baseline x86-64). Relative error ≤ 2 ulp. Inputs are clamped to
/// [−87.3, 88.3]: below, the result is ~1e-38 instead of 0, above it stays finite — harmless for
/// softmax, sigmoid and tanh, which is all it is used for.
public enum FastMath {
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let xc = Swift.min(Swift.max(x, -87.3), 88.3)
        let shifter: Float = 12_582_912  // 1.5 · 2^23: adding it rounds to an integer in the low bits
        let t = xc * 1.442_695_04 + shifter
        let n = t - shifter
        var r = xc - n * 0.693_359_375
        r = r - n * -2.121_944_40e-4
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let y = p * r * r + r + 1
        let exponent = Int32(bitPattern: t.bitPattern &- shifter.bitPattern) &+ 127
        return y * Float(bitPattern: UInt32(bitPattern: exponent) << 23)
    }

    /// `exp` on eight lanes with the same operations in the same order, so each lane equals the scalar
    /// result bit for bit. Loops that reduce (a softmax's running sum) or call through closures did not
    /// vectorise the scalar form: perf showed the cross-entropy's exponentials one at a time.
    @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        var xc = x
        xc.replace(with: SIMD8(repeating: -87.3), where: xc .< -87.3)
        xc.replace(with: SIMD8(repeating: 88.3), where: xc .> 88.3)
        let shifter = SIMD8<Float>(repeating: 12_582_912)
        let t = xc * 1.442_695_04 + shifter
        let n = t - shifter
        var r = xc - n * 0.693_359_375
        r = r - n * -2.121_944_40e-4
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let y = p * r * r + r + 1
        let exponent = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(shifter, to: SIMD8<Int32>.self)) &+ 127
        return y * unsafeBitCast(exponent &<< 23, to: SIMD8<Float>.self)
    }

    /// tanh through exp: 1 − 2/(e^{2x} + 1), ±1 at the ends.
    @inline(__always)
    public static func tanh(_ x: Float) -> Float { 1 - 2 / (exp(2 * x) + 1) }

    /// 1 / (1 + e^{−x})
    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }
}
