import Foundation

/// Softmax cross-entropy over a vocabulary, with ignored positions (target < 0, like PyTorch's
/// ignore_index = −100).
public enum CrossEntropy {
    /// Number of positions that count.
    public static func validCount(_ targets: UnsafePointer<Int32>, N: Int) -> Int {
        var n = 0
        for i in 0..<N where targets[i] >= 0 { n += 1 }
        return n
    }

    /// Returns Σ over valid rows of −log softmax(logits)[target] (double-accumulated). With `dlogits`,
    /// also writes (softmax − onehot) · gradientScale there (zero rows for ignored positions), which is
    /// ∂L/∂logits for L = gradientScale · Σ losses. `dlogits` may be `logits` itself (the gradient then
    /// replaces the logits, row by row, as llm.c does). With `losses`, each row's loss (0 when ignored).
    /// - logits, dlogits: [N, V]; targets, losses: [N]
    public static func forward(
        logits: ConstFloatPointer, targets: UnsafePointer<Int32>, N: Int, V: Int,
        dlogits: FloatPointer? = nil, gradientScale: Float = 1, losses: UnsafeMutablePointer<Double>? = nil
    ) -> Double {
        let chunks = max(1, min(Parallel.workers, N / 64))
        // One partial sum per chunk, on the stack: steady-state steps allocate nothing.
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: chunks) { partial in
            partial.initialize(repeating: 0)
            Parallel.chunks(N, chunks: chunks) { chunk, rows in
                var sum = 0.0
                for n in rows {
                    let x = logits + n * V
                    let target = Int(targets[n])
                    guard target >= 0 else {
                        losses?[n] = 0
                        if let dlogits { (dlogits + n * V).update(repeating: 0, count: V) }
                        continue
                    }
                    precondition(target < V, "target \(target) outside the vocabulary (\(V))")
                    var maxLogit = -Float.infinity
                    for j in 0..<V { maxLogit = max(maxLogit, x[j]) }
                    var total: Float = 0
                    for j in 0..<V { total += FastMath.exp(x[j] - maxLogit) }
                    let loss = Double(logf(total) + maxLogit - x[target])
                    losses?[n] = loss
                    sum += loss
                    if let dlogits {
                        let d = dlogits + n * V
                        let inv = gradientScale / total
                        for j in 0..<V { d[j] = FastMath.exp(x[j] - maxLogit) * inv }
                        d[target] -= gradientScale
                    }
                }
                partial[chunk] = sum
            }
            return partial.reduce(0, +)
        }
    }
}
