import Foundation

/// Wall time per kind of op, forward and backward apart, for `subspace bench train --profile`.
/// Off (nil on the model) costs one branch per op.
public final class Profiler: @unchecked Sendable {
    public enum Op: String, CaseIterable, Sendable {
        case embedding, norm, matmul = "matmul (linear layers)", attention, activation, rotary, lora
        case logits = "logits (output layer)", loss = "cross-entropy", residual = "residual copies"
    }

    public private(set) var forward: [Op: Double] = [:]
    public private(set) var backward: [Op: Double] = [:]
    var inBackward = false

    public init() {}

    @inline(__always)
    func measure<R>(_ op: Op, _ body: () -> R) -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        if inBackward { backward[op, default: 0] += seconds } else { forward[op, default: 0] += seconds }
        return result
    }

    public func reset() {
        forward = [:]
        backward = [:]
    }
}

extension Transformer {
    /// Runs `body`, charging its time to `op` when profiling.
    @inline(__always)
    func timed<R>(_ op: Profiler.Op, _ body: () -> R) -> R {
        guard let profiler else { return body() }
        return profiler.measure(op, body)
    }
}
