import SubspaceCore

/// The precision of the model's matrix products.
///
/// `bf16` is what PyTorch's CPU autocast does for linear layers: the inputs of each linear layer's
/// forward and backward products (and the output head's) are rounded to bf16, the products accumulate
/// and write fp32 (`BF16GEMM`). Master weights, gradients, optimizer state, norms, softmax, the loss and
/// the residual stream stay fp32. Attention's own products (QKᵀ, PV) and LoRA's adapter products stay
/// fp32 for now. Weights are converted per block once per change of the parameters (`Transformer.precision`).
public enum Precision: String, Sendable, CaseIterable, Codable {
    case fp32, bf16
}

/// A linear layer's weight [OC, IC]: fp32 always, and its bf16 copy when the model runs in bf16 — the
/// copy's presence is what makes `Linear` take the bf16 path.
public struct LinearWeight {
    public let fp32: ConstFloatPointer
    public let bf16: UnsafePointer<UInt16>?
    /// Where bf16 copies of inputs and output gradients are made (the model's, one per model).
    let scratch: BF16Scratch?

    public init(_ fp32: ConstFloatPointer) { (self.fp32, self.bf16, self.scratch) = (fp32, nil, nil) }

    public init(fp32: ConstFloatPointer, bf16: UnsafePointer<UInt16>, scratch: BF16Scratch) {
        (self.fp32, self.bf16, self.scratch) = (fp32, bf16, scratch)
    }
}

/// Growing bf16 buffers for a linear op's activations (its input rows and its output gradient), reused
/// across calls; one per model, so models running side by side (in-process ranks) never share one.
/// Also the model's bf16 kernel (`BF16GEMM.backend` when the model was set to bf16), so a model keeps
/// the kernel it was set up with whatever another one (a test) chooses later.
public final class BF16Scratch: @unchecked Sendable {
    private var buffers: [UnsafeMutablePointer<UInt16>?] = [nil, nil]
    private var capacities = [0, 0]
    public var backend: BF16GEMM.Backend

    public init(backend: BF16GEMM.Backend = BF16GEMM.backend) { self.backend = backend }
    deinit { for b in buffers { b?.deallocate() } }

    /// Buffer `slot` (0: inputs, 1: output gradients) with room for `count` values.
    func buffer(_ slot: Int, count: Int) -> UnsafeMutablePointer<UInt16> {
        if capacities[slot] < count {
            buffers[slot]?.deallocate()
            buffers[slot] = .allocate(capacity: count)
            capacities[slot] = count
        }
        return buffers[slot]!
    }

    /// rows × cols of `src` (row stride ld) as packed bf16 rows in buffer `slot`, converted in parallel.
    func convert(_ slot: Int, rows: Int, cols: Int, _ src: ConstFloatPointer, ld: Int) -> UnsafeMutablePointer<UInt16> {
        let dst = buffer(slot, count: rows * cols)
        Parallel.rows(rows, minimumPerChunk: max(1, 16_384 / max(cols, 1))) { range in
            BFloat16.convert(rows: range.count, cols: cols, src + range.lowerBound * ld, ldSrc: ld,
                             to: dst + range.lowerBound * cols, ldDst: cols)
        }
        return dst
    }
}
