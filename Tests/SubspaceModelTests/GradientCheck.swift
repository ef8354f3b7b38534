import Testing
import SubspaceCore
@testable import SubspaceModel

/// Central finite differences against an analytic gradient.
///
/// `loss(x)` must be a scalar function of `x`; `analytic` its gradient. A random sample of coordinates
/// (all of them when there are few) is perturbed by ±h; each must agree within
/// tolerance · (|numeric| + max|analytic|) — relative to the gradient's scale, since float32 forward
/// passes make tiny components noisy.
func checkGradient(_ what: String, at x: [Float], analytic: [Float], h: Float = 1e-2, samples: Int = 48,
                   tolerance: Float = 3e-3, seed: UInt64 = 1, sourceLocation: SourceLocation = #_sourceLocation,
                   loss: ([Float]) -> Double) {
    #expect(x.count == analytic.count, "\(what): gradient has \(analytic.count) entries for \(x.count) inputs", sourceLocation: sourceLocation)
    var rng = RandomStream(seed: seed)
    let indices = x.count <= samples ? Array(x.indices) : (0..<samples).map { _ in rng.nextInt(below: x.count) }
    let scale = analytic.map(abs).max() ?? 0
    #expect(scale > 0, "\(what): the analytic gradient is all zero, so the check would prove nothing", sourceLocation: sourceLocation)
    var worst: (index: Int, numeric: Float, analytic: Float)? = nil
    var worstExcess: Float = 0
    for i in indices {
        var plus = x, minus = x
        plus[i] += h
        minus[i] -= h
        let numeric = Float((loss(plus) - loss(minus)) / Double(2 * h))
        let excess = abs(numeric - analytic[i]) - tolerance * (abs(numeric) + scale)
        if excess > worstExcess { worstExcess = excess; worst = (i, numeric, analytic[i]) }
    }
    if let w = worst {
        Issue.record("\(what): at \(w.index) finite differences give \(w.numeric), backward gives \(w.analytic) (gradient scale \(scale))",
                     sourceLocation: sourceLocation)
    }
}

/// Σ out ⊙ weights in double: a scalar loss whose gradient with respect to `out` is `weights`.
func weightedSum(_ out: [Float], _ weights: [Float]) -> Double {
    zip(out, weights).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

func randomArray(_ count: Int, _ rng: inout RandomStream, std: Float = 1) -> [Float] {
    (0..<count).map { _ in rng.nextNormal() * std }
}
