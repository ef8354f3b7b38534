import Foundation
import SubspaceModel

/// AdamW exactly as `torch.optim.AdamW`: decoupled weight decay (p ← p·(1 − lr·wd)) applied before the
/// Adam update, bias-corrected moments, eps added after the square root of the corrected second moment.
///
/// The optimizer runs over flat ranges of a parameter buffer; its moments have the same length as the
/// ranges it is given, so under ZeRO-1 a rank holds moments for its shard only.
public struct AdamW: Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.01
    /// Steps taken (t in the bias corrections).
    public private(set) var step = 0

    public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// Starts the next step: bias corrections use the new step count.
    public mutating func beginStep() { step += 1 }

    /// Resumes at a given step count (from a checkpoint).
    public mutating func restore(step: Int) { self.step = step }

    /// One update of `count` parameters with their gradients and moments (m, v), after `beginStep()`.
    /// `decay` says whether this range takes weight decay (the fixture's rule: tensors of rank ≥ 2).
    /// `gradientScale`: the clipping factor, applied to each gradient as it is read (the same product
    /// as scaling the buffer first, without another pass over it; the buffer is left as it was).
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>,
                       m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                       learningRate lr: Float, decay: Bool, gradientScale: Float = 1) {
        precondition(step >= 1, "AdamW.update before beginStep()")
        let t = Double(step)
        let bc1 = Float(1 - pow(Double(beta1), t))
        let bc2Sqrt = Float((1 - pow(Double(beta2), t)).squareRoot())
        let stepSize = lr / bc1
        let shrink = decay ? 1 - lr * weightDecay : 1
        let (beta1, beta2, epsilon) = (beta1, beta2, epsilon)
        // Elementwise, so splitting over workers gives the same bits as one loop.
        Parallel.rows(count, minimumPerChunk: 1 << 15) { range in
            for i in range {
                let g = grads[i] * gradientScale
                let mi = beta1 * m[i] + (1 - beta1) * g
                let vi = beta2 * v[i] + (1 - beta2) * g * g
                m[i] = mi
                v[i] = vi
                let denom = vi.squareRoot() / bc2Sqrt + epsilon
                params[i] = params[i] * shrink - stepSize * (mi / denom)
            }
        }
    }
}

/// Global gradient-norm clipping as `torch.nn.utils.clip_grad_norm_`: the norm over all gradients; if it
/// exceeds `maxNorm`, every gradient is scaled by maxNorm / (norm + 1e-6).
public enum GradientClipping {
    /// Σ g² over a buffer, accumulated in double (ranks add these before the square root). Summed in
    /// fixed blocks (eight lanes each, lanes then blocks added in order), so the result does not depend on
    /// how many workers share the blocks; a serial loop of dependent double adds took ~8 ms per 5M
    /// gradients.
    public static func sumOfSquares(_ g: UnsafePointer<Float>, count: Int) -> Double {
        let block = 1 << 14
        let blocks = (count + block - 1) / block
        if blocks <= 1 { return blockSumOfSquares(g, count: count) }
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: blocks) { partial in
            let partial = partial.baseAddress!
            Parallel.rows(blocks, minimumPerChunk: 4) { range in
                for b in range { partial[b] = blockSumOfSquares(g + b * block, count: Swift.min(block, count - b * block)) }
            }
            var total = 0.0
            for b in 0..<blocks { total += partial[b] }
            return total
        }
    }

    @inline(__always)
    static func blockSumOfSquares(_ g: UnsafePointer<Float>, count: Int) -> Double {
        var acc = SIMD8<Double>(), i = 0
        while i + 8 <= count {
            let x = SIMD8<Double>(UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self))
            acc += x * x
            i += 8
        }
        var s = 0.0
        for lane in 0..<8 { s += acc[lane] }
        while i < count { s += Double(g[i]) * Double(g[i]); i += 1 }
        return s
    }

    /// The factor to multiply gradients by, given the global norm.
    public static func factor(norm: Double, maxNorm: Float) -> Float {
        let coefficient = Double(maxNorm) / (norm + 1e-6)
        return Float(min(coefficient, 1))
    }
}

/// Linear warm-up from 0 to the peak rate over `warmupSteps`, then cosine decay to `minimumRate` at
/// `totalSteps` (constant after). Steps count from 1, as optimizer steps do.
public struct LearningRateSchedule: Sendable, Equatable {
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minimumRate: Float

    public init(peak: Float, warmupSteps: Int = 0, totalSteps: Int, minimumRate: Float = 0) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minimumRate = minimumRate
    }

    public func rate(atStep step: Int) -> Float {
        if warmupSteps > 0 && step <= warmupSteps { return peak * Float(step) / Float(warmupSteps) }
        if step >= totalSteps { return minimumRate }
        let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        return minimumRate + (peak - minimumRate) * Float(0.5 * (1 + cos(Double.pi * progress)))
    }
}
