import SubspaceCore
import SubspaceDistributed

/// One module's weights before and after fine-tuning, each [out, in].
public struct DeltaPair: Sendable {
    public var base: Tensor
    public var tuned: Tensor

    public init(base: Tensor, tuned: Tensor) {
        precondition(base.rank == 2 && base.shape == tuned.shape, "base \(base.shape) and tuned \(tuned.shape) differ")
        self.base = base
        self.tuned = tuned
    }
}

/// Where ΔW comes from: the modules to analyse and, collectively, each module's base and tuned weights
/// on the rank that owns it.
///
/// The analysis runs in rounds: in each, every rank owns at most one module (rank 0's plan says which)
/// and every rank calls `loadRound` with the same `owners`. A source that reads files every rank can open
/// (`HFFolderDeltaSource`) needs no communication there; a source over a live model whose weights are
/// sharded (ZeRO-3) moves each owned module's shards to its owner inside `loadRound`, so no rank ever
/// holds more than the modules it owns this round.
public protocol DeltaSource {
    /// The modules to analyse, the same on every rank, in a stable order (HF order).
    var modules: [DeltaModule] { get }
    /// Tensors that are not LoRA targets, reported by norms only; the same on every rank.
    var otherTensors: [DeltaTensorInfo] { get }
    /// What the base and the tuned model are (folder paths, run names), for the outputs.
    var baseDescription: String { get }
    var tunedDescription: String { get }
    /// Differences between the two models that do not stop the analysis (e.g. config fields that
    /// leave every shape alone).
    var warnings: [String] { get }

    /// Collective. `owners[r]` is the index into `modules` that rank r owns this round, or nil. Returns
    /// this rank's module's weights as [out, in] when it owns one, nil otherwise.
    func loadRound(owners: [Int?], communicator: any Communicator) throws -> DeltaPair?

    /// Collective. ‖T_tuned − T_base‖² and ‖T_base‖² for every tensor of `otherTensors`, in order;
    /// valid on rank 0 at least.
    func otherTensorNorms(communicator: any Communicator) throws -> [SquaredNorms]
}

extension DeltaSource {
    public var warnings: [String] { [] }

    /// Splits `otherTensors` over the ranks by element count (longest first), computes each rank's share
    /// with `local`, and sums the shares so every rank holds all of them. For sources whose every rank
    /// can read any tensor.
    public func distributedOtherTensorNorms(
        communicator: any Communicator, _ local: (Int) throws -> SquaredNorms
    ) throws -> [SquaredNorms] {
        let tensors = otherTensors
        let plan = WorkPlan.longestProcessingTimeFirst(
            costs: tensors.map { Double(max(1, $0.shape.reduce(1, *))) }, ranks: communicator.size)
        var flat = [Double](repeating: 0, count: 2 * tensors.count)
        for i in plan.order[communicator.rank] {
            let n = try local(i)
            flat[2 * i] = n.delta
            flat[2 * i + 1] = n.base
        }
        if communicator.size > 1 { try communicator.allReduce(&flat, op: .sum) }  // one nonzero term each: exact
        return tensors.indices.map { SquaredNorms(delta: flat[2 * $0], base: flat[2 * $0 + 1]) }
    }
}

/// Σ x² in double precision.
func sumOfSquares(_ values: UnsafeBufferPointer<Float>) -> Double {
    var total = 0.0
    var i = 0
    let n = values.count
    // Four partial sums: fewer dependent adds, and the order is fixed, so results are reproducible.
    var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    while i + 4 <= n {
        let a = Double(values[i]), b = Double(values[i + 1]), c = Double(values[i + 2]), d = Double(values[i + 3])
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
        i += 4
    }
    while i < n { let a = Double(values[i]); total += a * a; i += 1 }
    return total + ((s0 + s1) + (s2 + s3))
}

extension Tensor {
    /// Σ x² in double precision.
    var sumOfSquares: Double { withUnsafeBufferPointer { SubspaceAnalysis.sumOfSquares($0) } }
}

/// ‖tuned − base‖² and ‖base‖², the difference taken in double precision.
func squaredNorms(base: Tensor, tuned: Tensor) -> SquaredNorms {
    precondition(base.shape == tuned.shape, "shapes differ: \(base.shape) vs \(tuned.shape)")
    return base.withUnsafeBufferPointer { b in
        tuned.withUnsafeBufferPointer { t in
            var norms = SquaredNorms(delta: 0, base: 0)
            for i in 0..<b.count {
                let x = Double(b[i]), d = Double(t[i]) - x
                norms.base += x * x
                norms.delta += d * d
            }
            return norms
        }
    }
}
