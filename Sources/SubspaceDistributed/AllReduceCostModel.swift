import Foundation

/// The α–β (latency–bandwidth) cost of a ring all-reduce: `n` bytes over `p` ranks take
///
///     t(n, p) = 2(p−1)·α + 2(p−1)/p · n·β
///
/// — 2(p−1) message steps (reduce-scatter, then all-gather), each paying the latency α, while every rank's
/// link carries 2(p−1)/p of the buffer at β seconds per byte. Fitted to measured all-reduce times
/// (`subspace bench allreduce --fit`) it predicts how a training step's gradient all-reduce grows with the
/// number of nodes. A model, not a measurement: Open MPI switches algorithms by size, and the trainer
/// overlaps its bucketed all-reduces with the backward pass, so a predicted step time is an upper bound.
public struct AllReduceCostModel: Sendable, Equatable, CustomStringConvertible {
    /// Seconds per message step.
    public var alpha: Double
    /// Seconds per byte on a rank's link.
    public var beta: Double

    public init(alpha: Double, beta: Double) {
        self.alpha = alpha
        self.beta = beta
    }

    /// Predicted seconds for an all-reduce of `bytes` over `ranks` ranks (0 for one rank).
    public func seconds(bytes: Double, ranks: Int) -> Double {
        guard ranks > 1 else { return 0 }
        let p = Double(ranks)
        return 2 * (p - 1) * alpha + 2 * (p - 1) / p * bytes * beta
    }

    /// Link bandwidth 1/β in bytes per second (infinite when β is 0).
    public var bytesPerSecond: Double { beta > 0 ? 1 / beta : .infinity }

    public var description: String {
        "α = \(Self.format(alpha * 1e6)) µs, β = \(Self.format(beta * 1e9)) ns/byte (1/β = \(Self.format(bytesPerSecond * 1e-9)) GB/s)"
    }

    /// A fitted model with how well it fits.
    public struct Fit: Sendable {
        public let model: AllReduceCostModel
        /// Root-mean-square of (predicted − measured) / measured over the samples.
        public let relativeError: Double
        /// Whether α or β came out negative and was pinned to 0 (then the other was refitted alone).
        public let pinned: Bool
    }

    /// Least-squares fit of α and β to all-reduce times measured on `ranks` ranks, one `(bytes, seconds)`
    /// per message size. Relative errors are minimised (each sample weighted by 1/seconds²), so small
    /// messages, which pin α down, count as much as large ones, which pin β. A coefficient that would come
    /// out negative is set to 0 and the other refitted. Nil with fewer than two distinct sizes, fewer than
    /// two ranks, or a non-positive or non-finite time.
    public static func fit(_ samples: [(bytes: Int, seconds: Double)], ranks: Int) -> Fit? {
        guard ranks > 1, Set(samples.map { $0.bytes }).count >= 2,
              samples.allSatisfy({ $0.seconds > 0 && $0.seconds.isFinite && $0.bytes >= 0 })
        else { return nil }
        let p = Double(ranks)
        let steps = 2 * (p - 1), share = 2 * (p - 1) / p
        // Weighted normal equations of t ≈ a·x + b·y with x = 2(p−1), y = share·n, weights 1/t².
        var (sxx, sxy, syy, sxt, syt) = (0.0, 0.0, 0.0, 0.0, 0.0)
        for (bytes, t) in samples {
            let w = 1 / (t * t), x = steps, y = share * Double(bytes)
            sxx += w * x * x; sxy += w * x * y; syy += w * y * y; sxt += w * x * t; syt += w * y * t
        }
        let determinant = sxx * syy - sxy * sxy
        var alpha = determinant != 0 ? (sxt * syy - syt * sxy) / determinant : -1
        var beta = determinant != 0 ? (syt * sxx - sxt * sxy) / determinant : -1
        var pinned = false
        if alpha < 0 || beta < 0 {
            pinned = true
            // Fit each one-parameter model and keep the better.
            let onlyBeta = AllReduceCostModel(alpha: 0, beta: max(0, syt / syy))
            let onlyAlpha = AllReduceCostModel(alpha: max(0, sxt / sxx), beta: 0)
            let best = [onlyBeta, onlyAlpha].min { rms($0, samples, ranks) < rms($1, samples, ranks) }!
            (alpha, beta) = (best.alpha, best.beta)
        }
        let model = AllReduceCostModel(alpha: alpha, beta: beta)
        return Fit(model: model, relativeError: rms(model, samples, ranks), pinned: pinned)
    }

    private static func rms(_ model: Self, _ samples: [(bytes: Int, seconds: Double)], _ ranks: Int) -> Double {
        let squares = samples.map { sample -> Double in
            let r = (model.seconds(bytes: Double(sample.bytes), ranks: ranks) - sample.seconds) / sample.seconds
            return r * r
        }
        return (squares.reduce(0, +) / Double(max(1, squares.count))).squareRoot()
    }

    private static func format(_ value: Double) -> String {
        value.isFinite ? String(format: value.magnitude >= 100 ? "%.1f" : "%.4g", value) : "∞"
    }
}
