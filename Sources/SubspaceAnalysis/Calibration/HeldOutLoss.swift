import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// Mean next-token cross-entropy of a model (HF folder, optionally with a PEFT adapter) over a set of
/// sequences, each rank its slice, summed across ranks: the "knowledge" a fine-tune may forget.
public enum HeldOutLoss {
    public static func evaluate(model folder: String, adapter: String? = nil, data: CalibrationSet, batch: Int = 8,
                                communicator: any Communicator) throws -> Double {
        let model = try HFCheckpoint.load(folder: folder)
        if let adapter { model.adapters = try PEFTAdapter.load(folder: adapter, for: model.config) }
        guard data.sequenceLength <= model.config.maxPositions else {
            throw AnalysisError(file: data.source, "sequences of \(data.sequenceLength) tokens are longer than the model's context of \(model.config.maxPositions) positions")
        }
        let T = data.sequenceLength
        var sums = [0.0, 0.0]
        data.forEachBatch(data.slice(rank: communicator.rank, size: communicator.size), batch: batch) { ids, B in
            var targets = [Int32](repeating: -100, count: B * T)
            for b in 0..<B { for t in 0..<(T - 1) { targets[b * T + t] = ids[b * T + t + 1] } }
            let loss = model.forward(ids: ids, targets: targets, B: B, T: T) ?? 0
            sums[0] += Double(loss) * Double(model.lastValidCount)
            sums[1] += Double(model.lastValidCount)
        }
        try communicator.allReduce(&sums, op: .sum)
        return sums[1] > 0 ? sums[0] / sums[1] : .nan
    }
}
