import Foundation
import SubspaceDistributed
import SubspaceModel

/// A batch of sequences for one forward pass on one rank.
public struct MicroBatch: Sendable {
    public var ids: [Int32]
    /// Next-token targets; negative = not counted (prompt, padding).
    public var targets: [Int32]
    public var batch: Int
    public var sequence: Int

    public init(ids: [Int32], targets: [Int32], batch: Int, sequence: Int) {
        precondition(ids.count == batch * sequence && targets.count == ids.count, "micro-batch shape")
        (self.ids, self.targets, self.batch, self.sequence) = (ids, targets, batch, sequence)
    }

    public var validCount: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
}

/// What one optimizer step measured, identical on every rank.
public struct StepResult: Sendable {
    /// Mean cross-entropy over every counted position of the global batch.
    public let loss: Double
    /// Global gradient norm before clipping.
    public let gradientNorm: Double
    /// Counted positions in the global batch.
    public let tokens: Int
}

/// One optimizer step over this rank's micro-batches: the loss is the mean over the *global* batch's
/// counted positions (so gradients scale by 1/global count and sum over ranks), then the ZeRO engine
/// reduces, clips and updates. Losses and norms are global, so every rank decides alike on a non-finite
/// value and none is left waiting.
public final class StepRunner {
    public let engine: ZeroEngine
    var model: Transformer { engine.model }

    /// Test hook: at this step (1-based) the last rank back-propagates with a NaN scale, so its gradients —
    /// and after reduction everyone's — are NaN (`SUBSPACE_FAULT_NAN_STEP`; for the multi-rank tests).
    let nanStep: Int?

    public init(engine: ZeroEngine) {
        self.engine = engine
        nanStep = ProcessInfo.processInfo.environment["SUBSPACE_FAULT_NAN_STEP"].flatMap { Int($0) }
    }

    public func run(_ microBatches: [MicroBatch], learningRate: Float, step: Int) throws -> StepResult {
        let comm = engine.communicator
        var counts = [Double(microBatches.reduce(0) { $0 + $1.validCount })]
        engine.collective("all-reduce token count") { try comm.allReduce(&counts, op: .sum) }
        let globalCount = counts[0]
        guard globalCount > 0 else { throw TrainingError.nonFinite(step: step, what: "the batch has no counted positions; loss") }
        engine.zeroGradients()
        var lossSum = 0.0
        for (i, mb) in microBatches.enumerated() {
            engine.isLastMicroBatch = i == microBatches.count - 1
            model.forward(ids: mb.ids, targets: mb.targets, B: mb.batch, T: mb.sequence)
            lossSum += Double(model.lastLoss ?? 0) * Double(model.lastValidCount)
            let poison = step == nanStep && comm.rank == comm.size - 1 && i == microBatches.count - 1
            model.backward(gradientScale: poison ? .nan : Float(1 / globalCount))
        }
        // Loss and gradient norm are global, so every rank stops alike, before any parameter is updated.
        // The loss is reduced on this thread once the communication thread's bucket reductions are done
        // (two threads must not interleave collectives on one communicator).
        engine.waitForBuckets()
        var total = [lossSum]
        engine.collective("all-reduce loss") { try comm.allReduce(&total, op: .sum) }
        let loss = total[0] / globalCount
        guard loss.isFinite else { throw TrainingError.nonFinite(step: step, what: "the loss") }
        let norm = try engine.checkedStep(learningRate: learningRate, step: step)
        return StepResult(loss: loss, gradientNorm: norm, tokens: Int(globalCount))
    }

    /// Mean loss over `batches` (no gradients), summed over ranks: for validation.
    public func evaluate(_ batches: [MicroBatch]) -> Double {
        var sums = [0.0, 0.0]
        for mb in batches {
            model.forward(ids: mb.ids, targets: mb.targets, B: mb.batch, T: mb.sequence)
            guard model.lastValidCount > 0 else { continue }  // a padding batch (see Trainer.evaluate)
            sums[0] += Double(model.lastLoss ?? 0) * Double(model.lastValidCount)
            sums[1] += Double(model.lastValidCount)
        }
        engine.collective("all-reduce validation loss") { try engine.communicator.allReduce(&sums, op: .sum) }
        return sums[1] > 0 ? sums[0] / sums[1] : .nan
    }
}
