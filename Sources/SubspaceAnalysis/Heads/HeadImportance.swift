import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceTraining

/// Per-head scores of a model on a fixed set of sequences, through the transformer's head gates ξ [L, H].
///
/// - `loss`: the mean token loss over the whole set (all counted positions of all sequences).
/// - `ablation[l][h]`: the loss with ξ_{l,h} = 0 (every other gate 1) minus `loss`; L·H extra passes.
/// - `taylor[l][h]`: Michel et al. 2019, mean over sequences of |∂L_s/∂ξ_{l,h}| at ξ = 1, L_s being
///   sequence s's mean token loss.
/// - `fisher[l][h]`: mean over sequences of (∂L_s/∂ξ_{l,h})².
/// - `gradient[l][h]`: mean over sequences of ∂L_s/∂ξ_{l,h} (signed).
/// - `taylorLayerNormalized`: `taylor` divided, layer by layer, by its ℓ2 norm over the layer's heads
///   (Michel et al.'s normalisation).
/// Sequences with no counted position are left out of the means.
public struct HeadScores: Codable, Sendable, Equatable {
    public var layers: Int
    public var heads: Int
    public var sequences: Int
    public var loss: Double
    public var ablation: [[Double]]?
    public var taylor: [[Double]]
    public var fisher: [[Double]]
    public var gradient: [[Double]]
    public var taylorLayerNormalized: [[Double]]

    enum CodingKeys: String, CodingKey {
        case layers, heads, sequences, loss, ablation, taylor, fisher, gradient
        case taylorLayerNormalized = "taylor_layer_normalized"
    }
}

/// Measures `HeadScores` across the ranks of a communicator.
///
/// The sequences are cut into fixed micro-batches of consecutive indices (the same whatever the world
/// size); ranks take micro-batches round-robin for the gradient pass and the (layer, head) ablations
/// round-robin for the ablation passes. Each rank writes its results into zero-filled buffers that are
/// summed across ranks (one nonzero term per element: exact), and every rank then reduces them in
/// sequence order, so np = 1, 2, 3 give the same numbers. Kernels run on one thread per rank during
/// the measurement (run it with one rank per core).
public enum HeadImportance {
    public struct Options: Sendable {
        /// Sequences per forward/backward pass.
        public var microBatch: Int
        /// Run the L·H ablation passes.
        public var ablation: Bool

        public init(microBatch: Int = 8, ablation: Bool = true) {
            self.microBatch = microBatch
            self.ablation = ablation
        }
    }

    /// What a measurement reports as it goes (rank 0 forwards these to the user).
    public enum Event: Sendable {
        case gradientsDone(sequences: Int, seconds: Double)
        case ablationDone(passes: Int, seconds: Double)
    }

    /// Collective. Scores of `model` (with its adapters, if any) on samples `0..<count` of `samples`
    /// (all of them by default). The model's weights are not changed; its gates and frozen set are
    /// restored on return.
    public static func measure(model: Transformer, samples: any TrainingSampleSource, count: Int? = nil,
                               options: Options = Options(), communicator: any Communicator,
                               events: (Event) -> Void = { _ in }) throws -> HeadScores {
        let N = min(count ?? samples.count, samples.count)
        precondition(N >= 1, "no sequences to measure heads on")
        precondition(options.microBatch >= 1, "micro-batch must be ≥ 1")
        let (L, H, T) = (model.config.layerCount, model.config.headCount, samples.sequence)
        let LH = L * H
        let saved = (model.headGates, model.frozen, model.computesGateGradients, model.training, model.adapters?.training)
        // One kernel thread per rank: how a GEMM is split over threads (and which BLAS kernel each piece
        // takes) changes float rounding, and the numbers must not depend on how many ranks share the
        // cores. The ranks are the parallelism here. Activation buffers sized for one thread are dropped.
        let savedWorkers = Parallel.workers
        Parallel.workers = 1
        defer {
            Parallel.workers = savedWorkers
            model.releaseActivations()
            model.headGates = saved.0
            model.frozen = saved.1
            model.computesGateGradients = saved.2
            model.training = saved.3
            if let t = saved.4 { model.adapters?.training = t }
        }
        model.training = false
        model.adapters?.training = false
        model.headGates = nil
        // No weight gradients: only activations and the gates' gradients are needed.
        model.frozen = Set(model.layout.entries.map(\.role))

        let m = options.microBatch
        let batches = (N + m - 1) / m
        let (rank, size) = (communicator.rank, communicator.size)
        var ids: [Int32] = [], targets: [Int32] = []

        // Gradient pass: per-sequence loss sums, counts and ∂(loss sum)/∂ξ.
        var start = DispatchTime.now().uptimeNanoseconds
        var rowSums = [Double](repeating: 0, count: 2 * N)  // sum, count per sequence
        var rowGrads = [Float](repeating: 0, count: N * LH)
        model.computesGateGradients = true
        for batch in stride(from: rank, to: batches, by: size) {
            let rows = (batch * m)..<min(N, (batch + 1) * m)
            samples.batch(rows, ids: &ids, targets: &targets)
            model.forward(ids: ids, targets: targets, B: rows.count, T: T)
            model.backward(gradientScale: 1)
            let (sums, counts) = model.rowLosses()
            let g = model.gateGradients
            g.withUnsafeBufferPointer { g in
                for (r, s) in rows.enumerated() {
                    rowSums[2 * s] = sums[r]
                    rowSums[2 * s + 1] = Double(counts[r])
                    for i in 0..<LH { rowGrads[s * LH + i] = g[r * LH + i] }
                }
            }
        }
        model.computesGateGradients = false
        if size > 1 {
            try communicator.allReduce(&rowSums, op: .sum)
            try communicator.allReduce(&rowGrads, op: .sum)
        }
        var taylor = [Double](repeating: 0, count: LH), fisher = taylor, gradient = taylor
        var lossSum = 0.0, tokenCount = 0.0, used = 0
        for s in 0..<N {
            let count = rowSums[2 * s + 1]
            lossSum += rowSums[2 * s]
            tokenCount += count
            guard count > 0 else { continue }
            used += 1
            for i in 0..<LH {
                let g = Double(rowGrads[s * LH + i]) / count
                gradient[i] += g
                taylor[i] += abs(g)
                fisher[i] += g * g
            }
        }
        let mean = 1 / Double(max(used, 1))
        for i in 0..<LH { gradient[i] *= mean; taylor[i] *= mean; fisher[i] *= mean }
        let loss = tokenCount > 0 ? lossSum / tokenCount : 0
        events(.gradientsDone(sequences: N, seconds: seconds(since: start)))

        // Ablation passes: (layer, head) pairs round-robin over ranks, each over every micro-batch.
        var ablation: [Double]? = nil
        if options.ablation {
            start = DispatchTime.now().uptimeNanoseconds
            var losses = [Double](repeating: 0, count: LH)
            var gates = [Float](repeating: 1, count: LH)
            for pair in stride(from: rank, to: LH, by: size) {
                gates[pair] = 0
                model.headGates = gates
                var sum = 0.0
                for batch in 0..<batches {
                    let rows = (batch * m)..<min(N, (batch + 1) * m)
                    samples.batch(rows, ids: &ids, targets: &targets)
                    model.forward(ids: ids, targets: targets, B: rows.count, T: T)
                    sum += model.rowLosses().sums.reduce(0, +)
                }
                losses[pair] = (tokenCount > 0 ? sum / tokenCount : 0) - loss
                gates[pair] = 1
            }
            model.headGates = nil
            if size > 1 { try communicator.allReduce(&losses, op: .sum) }
            ablation = losses
            events(.ablationDone(passes: LH, seconds: seconds(since: start)))
        }

        func grid(_ flat: [Double]) -> [[Double]] { (0..<L).map { Array(flat[($0 * H)..<(($0 + 1) * H)]) } }
        let normalized = grid(taylor).map { row -> [Double] in
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return norm > 0 ? row.map { $0 / norm } : row
        }
        return HeadScores(layers: L, heads: H, sequences: used, loss: loss, ablation: ablation.map(grid),
                          taylor: grid(taylor), fisher: grid(fisher), gradient: grid(gradient),
                          taylorLayerNormalized: normalized)
    }

    static func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
}

/// Sequences held in memory, [N, T], as a sample source: `subspace heads importance`'s input.
public struct SequenceSamples: TrainingSampleSource {
    public let count: Int
    public let sequence: Int
    public let ids: [Int32]
    public let targets: [Int32]

    public init(ids: [Int32], targets: [Int32], count: Int, sequence: Int) {
        precondition(ids.count == count * sequence && targets.count == ids.count, "ids/targets are not [\(count), \(sequence)]")
        (self.ids, self.targets, self.count, self.sequence) = (ids, targets, count, sequence)
    }

    /// HF causal-LM labels = the ids: position t predicts token t + 1; the last position is ignored.
    public init(causalLM ids: [Int32], count: Int, sequence: Int) {
        var targets = [Int32](repeating: TrainingSample.ignored, count: ids.count)
        for b in 0..<count { for t in 0..<(sequence - 1) { targets[b * sequence + t] = ids[b * sequence + t + 1] } }
        self.init(ids: ids, targets: targets, count: count, sequence: sequence)
    }

    public func write(_ index: Int, ids: UnsafeMutableBufferPointer<Int32>, targets: UnsafeMutableBufferPointer<Int32>) {
        for t in 0..<sequence {
            ids[t] = self.ids[index * sequence + t]
            targets[t] = self.targets[index * sequence + t]
        }
    }
}
