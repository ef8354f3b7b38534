import Foundation

/// Row operations for attention tiles, norms and the cross-entropy, written with explicit vector lanes:
/// Swift does not reorder float reductions, so a plain loop with a running max or sum would stay scalar.
enum TileMath {
    typealias Vector = SIMD16<Float>

    @inline(__always)
    static func load(_ x: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(x).loadUnaligned(as: Vector.self)
    }

    /// max of x[0..<n] (−∞ for n = 0). A compare-and-replace rather than `pointwiseMax`, whose NaN rules
    /// compiled to one lane at a time through memory (measured: 3× the time of the exponentials).
    @inline(__always)
    static func max(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var j = 0, m = -Float.infinity
        if n >= Vector.scalarCount {
            var acc = Vector(repeating: -.infinity)
            while j + Vector.scalarCount <= n {
                let v = load(x + j)
                acc.replace(with: v, where: v .> acc)
                j += Vector.scalarCount
            }
            for lane in 0..<Vector.scalarCount where acc[lane] > m { m = acc[lane] }
        }
        while j < n { if x[j] > m { m = x[j] }; j += 1 }
        return m
    }

    /// Σ x[0..<n]
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var j = 0, acc = Vector()
        while j + Vector.scalarCount <= n { acc += load(x + j); j += Vector.scalarCount }
        var s: Float = 0
        for lane in 0..<Vector.scalarCount { s += acc[lane] }
        while j < n { s += x[j]; j += 1 }
        return s
    }

    /// Σ x[j]·y[j] over 0..<n
    @inline(__always)
    static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var j = 0, acc = Vector()
        while j + Vector.scalarCount <= n { acc += load(x + j) * load(y + j); j += Vector.scalarCount }
        var s: Float = 0
        for lane in 0..<Vector.scalarCount { s += acc[lane] }
        while j < n { s += x[j] * y[j]; j += 1 }
        return s
    }

    /// Σ e^{x[j] − shift} over 0..<n, x unchanged (eight lanes of `FastMath.exp`).
    @inline(__always)
    static func sumExpShifted(_ x: UnsafePointer<Float>, _ n: Int, by shift: Float) -> Float {
        var j = 0, acc = SIMD8<Float>()
        let sv = SIMD8<Float>(repeating: shift)
        while j + 8 <= n {
            acc += FastMath.exp(UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self) - sv)
            j += 8
        }
        var s: Float = 0
        for lane in 0..<8 { s += acc[lane] }
        while j < n { s += FastMath.exp(x[j] - shift); j += 1 }
        return s
    }

    /// out[j] ← e^{x[j] − shift} · scale over 0..<n (out may be x), each element as the scalar form gives it.
    @inline(__always)
    static func expShifted(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, by shift: Float,
                           scale: Float) {
        var j = 0
        let sv = SIMD8<Float>(repeating: shift), cv = SIMD8<Float>(repeating: scale)
        while j + 8 <= n {
            let e = FastMath.exp(UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self) - sv) * cv
            UnsafeMutableRawPointer(out + j).storeBytes(of: e, as: SIMD8<Float>.self)
            j += 8
        }
        while j < n { out[j] = FastMath.exp(x[j] - shift) * scale; j += 1 }
    }

    /// Σ (x[j] − m)² over 0..<n
    @inline(__always)
    static func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, _ n: Int, from m: Float) -> Float {
        var j = 0, acc = Vector()
        let mv = Vector(repeating: m)
        while j + Vector.scalarCount <= n { let d = load(x + j) - mv; acc += d * d; j += Vector.scalarCount }
        var s: Float = 0
        for lane in 0..<Vector.scalarCount { s += acc[lane] }
        while j < n { let d = x[j] - m; s += d * d; j += 1 }
        return s
    }

    /// Σ x[j]·y[j]·z[j] over 0..<n
    @inline(__always)
    static func dot3(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafePointer<Float>, _ n: Int) -> Float {
        var j = 0, acc = Vector()
        while j + Vector.scalarCount <= n { acc += load(x + j) * load(y + j) * load(z + j); j += Vector.scalarCount }
        var s: Float = 0
        for lane in 0..<Vector.scalarCount { s += acc[lane] }
        while j < n { s += x[j] * y[j] * z[j]; j += 1 }
        return s
    }

    /// Σ d[j]·w[j]·(x[j] − mean)·rstd over 0..<n: LayerNorm backward's Σ dnorm · x̂.
    @inline(__always)
    static func layerNormBackwardDot(_ d: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                     _ n: Int, mean: Float, rstd: Float) -> Float {
        var j = 0, acc = Vector()
        let mv = Vector(repeating: mean), sv = Vector(repeating: rstd)
        while j + Vector.scalarCount <= n {
            acc += load(d + j) * load(w + j) * ((load(x + j) - mv) * sv)
            j += Vector.scalarCount
        }
        var s: Float = 0
        for lane in 0..<Vector.scalarCount { s += acc[lane] }
        while j < n { s += d[j] * w[j] * ((x[j] - mean) * rstd); j += 1 }
        return s
    }

    /// x[j] ← e^{x[j] − shift} over 0..<n (the scaled form with scale 1: a product by 1 is exact).
    @inline(__always)
    static func expShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, by shift: Float) {
        expShifted(x, x, n, by: shift, scale: 1)
    }

    /// x[0..<n] ← a · x
    @inline(__always)
    static func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, by a: Float) {
        for j in 0..<n { x[j] *= a }
    }

    /// dp[j] ← p[j] · (gate · dp[j] − rowSum) · scale over 0..<n
    @inline(__always)
    static func softmaxBackward(_ dp: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, _ n: Int,
                                gate: Float, rowSum: Float, scale: Float) {
        for j in 0..<n { dp[j] = p[j] * (gate * dp[j] - rowSum) * scale }
    }
}
