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
                    // Reductions in lanes (TileMath): as plain loops they stayed scalar, exp included.
                    let maxLogit = TileMath.max(x, V)
                    let total = TileMath.sumExpShifted(x, V, by: maxLogit)
                    let loss = Double(logf(total) + maxLogit - x[target])
                    losses?[n] = loss
                    sum += loss
                    if let dlogits {
                        let d = dlogits + n * V
                        let inv = gradientScale / total
                        TileMath.expShifted(d, x, V, by: maxLogit, scale: inv)
                        d[target] -= gradientScale
                    }
                }
                partial[chunk] = sum
            }
            return partial.reduce(0, +)
        }
    }

    // MARK: A vocabulary slice at a time (online softmax)

    /// Resets the per-row statistics before the first slice: running max −∞, running sum 0.
    public static func beginSlices(rowMax: FloatPointer, rowSum: FloatPointer, N: Int) {
        rowMax.update(repeating: -.infinity, count: N)
        rowSum.update(repeating: 0, count: N)
    }

    /// Adds one vocabulary slice's logits (`columns` of the vocabulary, row stride `ld`) to each counted
    /// row's running max and running Σ exp(logit − max) (online softmax: the sum is rescaled when the max
    /// grows), and keeps the target's logit when it falls in the slice. Rows are independent, so the
    /// result does not depend on the thread count.
    public static func accumulate(
        logits: ConstFloatPointer, ld: Int, columns: Range<Int>, targets: UnsafePointer<Int32>, N: Int,
        rowMax: FloatPointer, rowSum: FloatPointer, targetLogit: FloatPointer
    ) {
        let V = columns.count
        Parallel.rows(N, minimumPerChunk: 4) { rows in
            for n in rows {
                let target = Int(targets[n])
                guard target >= 0 else { continue }
                let x = logits + n * ld
                // Both reductions in vector lanes (TileMath): as plain loops they stayed scalar, exp included.
                let sliceMax = TileMath.max(x, V)
                var m = rowMax[n]
                if sliceMax > m {
                    if m > -.infinity { rowSum[n] *= FastMath.exp(m - sliceMax) }
                    m = sliceMax
                    rowMax[n] = m
                }
                rowSum[n] += TileMath.sumExpShifted(x, V, by: m)
                if columns.contains(target) { targetLogit[n] = x[target - columns.lowerBound] }
            }
        }
    }

    /// After the last slice: each counted row's log Σ exp (into `rowMax`'s place: `logSumExp`) and loss
    /// (0 when ignored), and the Σ of the losses in row order (double).
    public static func finishSlices(
        targets: UnsafePointer<Int32>, N: Int, V: Int, rowMax: ConstFloatPointer, rowSum: ConstFloatPointer,
        targetLogit: ConstFloatPointer, logSumExp: FloatPointer, losses: UnsafeMutablePointer<Double>
    ) -> Double {
        var sum = 0.0
        for n in 0..<N {
            let target = Int(targets[n])
            guard target >= 0 else { losses[n] = 0; logSumExp[n] = 0; continue }
            precondition(target < V, "target \(target) outside the vocabulary (\(V))")
            let lse = logf(rowSum[n]) + rowMax[n]
            logSumExp[n] = lse
            let loss = Double(lse - targetLogit[n])
            losses[n] = loss
            sum += loss
        }
        return sum
    }

    /// ∂L/∂logits of one vocabulary slice for L = gradientScale · Σ losses: (softmax − onehot) · scale,
    /// softmax = exp(logit − logSumExp) (zero rows for ignored positions). `dlogits` may be `logits`.
    public static func sliceGradient(
        logits: ConstFloatPointer, dlogits: FloatPointer, ld: Int, columns: Range<Int>, targets: UnsafePointer<Int32>,
        logSumExp: ConstFloatPointer, N: Int, gradientScale: Float
    ) {
        let V = columns.count
        Parallel.rows(N, minimumPerChunk: 4) { rows in
            for n in rows {
                let target = Int(targets[n])
                let d = dlogits + n * ld
                guard target >= 0 else { d.update(repeating: 0, count: V); continue }
                let x = logits + n * ld, lse = logSumExp[n]
                TileMath.expShifted(d, x, V, by: lse, scale: gradientScale)
                if columns.contains(target) { d[target - columns.lowerBound] -= gradientScale }
            }
        }
    }
}
