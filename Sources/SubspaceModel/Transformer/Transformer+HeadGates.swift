import SubspaceCore

/// Head gates: ξ ∈ R^{L×H}, one scalar per (layer, query head) multiplying that head's attention output
/// before the output projection — the same as HF's `head_mask` on the attention probabilities, and as
/// scaling the output projection's input columns [h·D, (h+1)·D). ξ_h = 0 ablates the head.
///
/// The gate gradient comes out of the attention backward for almost nothing (∂L/∂ξ_h is the sum of the
/// softmax backward's row sums), per batch row, so one backward over a batch of sequences gives every
/// sequence's own gradient: rows do not interact in the model.
extension Transformer {
    /// Calls `body` with layer `l`'s gates ([H]) or nil when there are none.
    func withGates<R>(layer l: Int, _ body: (ConstFloatPointer?) -> R) -> R {
        guard let headGates else { return body(nil) }
        return headGates.withUnsafeBufferPointer { body($0.baseAddress! + l * config.headCount) }
    }

    /// Zeroes and returns the [B, L, H] gate-gradient buffer when gate gradients are wanted.
    func prepareGateGradients(B: Int) -> FloatPointer? {
        guard computesGateGradients else { return nil }
        let count = B * config.layerCount * config.headCount
        if gateGradientBuffer?.capacity != count { gateGradientBuffer = Buffer(capacity: count) }
        gateGradientBuffer!.pointer.update(repeating: 0, count: count)
        return gateGradientBuffer!.pointer
    }

    /// ∂L/∂ξ of the last backward (with `computesGateGradients`), [B, L, H]: row b holds the gradient of
    /// the loss terms of batch row b (with the backward's gradient scale); summed over rows, ∂L/∂ξ.
    public var gateGradients: Tensor {
        guard let buffer = gateGradientBuffer, let a = buffers else {
            preconditionFailure("gateGradients read before a backward with computesGateGradients")
        }
        return Tensor(shape: [a.B, config.layerCount, config.headCount],
                      values: Array(UnsafeBufferPointer(start: buffer.pointer, count: buffer.capacity)))
    }

    /// Drops the activation buffers (they are made again by the next forward), e.g. after running with
    /// a different kernel thread count, which sizes the attention scratch.
    public func releaseActivations() { buffers = nil }

    /// Per-row loss sums of the last forward with targets: Σ over row b's counted positions of the
    /// cross-entropy, and how many positions counted. Summed position by position in order from the
    /// forward's per-position losses, so the sums do not depend on the thread count.
    public func rowLosses() -> (sums: [Double], counts: [Int]) {
        guard let a = buffers, lastLoss != nil else { preconditionFailure("rowLosses() needs a forward pass with targets") }
        var sums = [Double](repeating: 0, count: a.B), counts = [Int](repeating: 0, count: a.B)
        for b in 0..<a.B {
            for i in (b * a.T)..<((b + 1) * a.T) where a.targets[i] >= 0 {
                counts[b] += 1
                sums[b] += a.positionLosses[i]
            }
        }
        return (sums, counts)
    }
}
